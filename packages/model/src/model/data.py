"""Reading a training or evaluation table, and its fingerprint."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.artifact import sha256_file
from model.exceptions import DataError


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (by extension) into a DataFrame, with clear errors."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet"}:
        msg = f"{path}: unsupported format {suffix or '(none)'!r}; use .csv or .parquet"
        raise DataError(msg)
    if not path.is_file():
        msg = f"{path}: data file not found"
        raise DataError(msg)
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        table: pd.DataFrame = pq.read_table(path).to_pandas()
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        pa.ArrowException,
        UnicodeError,
    ) as err:
        msg = f"{path}: cannot read as {suffix[1:]}: {err}"
        raise DataError(msg) from None
    return table


def fingerprint(path: Path, n_rows: int) -> dict[str, str | int]:
    """The sha256 of the file's bytes and its row count, for the manifest."""
    return {"file": path.name, "sha256": sha256_file(path), "rows": n_rows}
