"""Reading a training or evaluation table, and its fingerprint."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

import features
from features import FeatureSpec, InputError
from model.exceptions import DataError
from model.manifest import sha256_file


def read_table(path: Path, spec: FeatureSpec, *, target: bool = True) -> pa.Table:
    """Read a CSV or Parquet file by the spec's rules (:func:`features.read_table`): a missing
    file, an unreadable one, or a header without a spec column is a :class:`DataError`."""
    try:
        return features.read_table(path, spec, target=target)
    except InputError as error:
        raise DataError(str(error)) from None


def fingerprint(path: Path, n_rows: int) -> dict[str, str | int]:
    """The sha256 of the file's bytes and its row count, for the manifest."""
    return {"file": path.name, "sha256": sha256_file(path), "rows": n_rows}
