"""Streaming reads and atomic writes of CSV and Parquet files, chunk by chunk (pyarrow)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features import FeatureSpec
from serving.exceptions import TableError

FORMATS = {".csv": "csv", ".parquet": "parquet"}


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the extension, or a :class:`TableError`."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        msg = f"{path}: unsupported format {path.suffix or '(none)'!r}; use .csv or .parquet"
        raise TableError(msg) from None


def _batches(path: Path, spec: FeatureSpec, rows: int) -> Iterator[pa.RecordBatch]:
    if file_format(path) == "parquet":
        # Only the columns scoring uses; text categories straight into Arrow dictionaries.
        names = pq.read_schema(path).names
        categorical = [c.name for c in spec.features if c.kind == "categorical" and c.name in names]
        # pre_buffer=False: pre-buffering keeps every row group read so far (memory grows with
        # the file, ~32 bytes per row here); reading is no slower without it on local disk.
        source = pq.ParquetFile(path, read_dictionary=categorical, pre_buffer=False)
        used = {*spec.feature_names, *([spec.id_column] if spec.id_column else [])}
        columns = [n for n in names if n in used]  # none at all still gives the row count
        yield from source.iter_batches(batch_size=min(rows, 65_536), columns=columns)
        return
    # Spec columns are read as text and typed by `_typed`, so one bad value in a numeric column
    # becomes one rejected row, not a failed block.
    text = dict.fromkeys([*spec.feature_names, spec.target.name], pa.string())
    if spec.id_column:
        text[spec.id_column] = pa.string()
    convert = pacsv.ConvertOptions(column_types=text, strings_can_be_null=True)
    reader = pacsv.open_csv(
        path, convert_options=convert, read_options=pacsv.ReadOptions(block_size=4 << 20)
    )
    yield from reader


def read_chunks(path: Path, spec: FeatureSpec, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield frames of ``chunk_rows`` rows (the last may be shorter), typed for validation,
    each indexed 0..n-1."""
    if not path.is_file():
        msg = f"{path}: input file not found"
        raise TableError(msg)
    pending: list[pa.RecordBatch] = []
    size = 0
    try:
        for batch in _batches(path, spec, chunk_rows):
            pending.append(batch)
            size += batch.num_rows
            while size >= chunk_rows:
                table = pa.Table.from_batches(pending)
                yield _frame(table.slice(0, chunk_rows), spec)
                rest = table.slice(chunk_rows)
                pending, size = rest.to_batches(), rest.num_rows
        if size:
            yield _frame(pa.Table.from_batches(pending), spec)
    except (pa.ArrowException, OSError) as error:
        msg = f"{path}: cannot read as {file_format(path)}: {error}"
        raise TableError(msg) from None


def _frame(table: pa.Table, spec: FeatureSpec) -> pd.DataFrame:
    """A chunk as pandas. Text in numeric columns (CSV) is parsed by Arrow when the whole
    column parses, else left to :func:`_typed`, value by value. Text in categorical columns
    arrives as pandas categoricals: Arrow encodes it in C, so no Python string is made per row,
    and validation and encoding then work once per distinct value."""
    for column in spec.features:
        if column.kind == "boolean" or column.name not in table.column_names:
            continue
        index = table.schema.get_field_index(column.name)
        kind = table.schema[index].type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        if column.kind == "categorical":
            table = table.set_column(index, column.name, pc.dictionary_encode(table[index]))
            continue
        try:
            numbers = pc.cast(table[index], pa.float64())
        except pa.ArrowInvalid:
            continue  # some value is not a number: _typed finds which
        table = table.set_column(index, column.name, numbers)
    return _typed(table.to_pandas(), spec)


def _typed(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Turn text columns (from CSV) into numbers or booleans where they parse; a value that
    does not parse stays text, so validation reports it as the wrong type. The index is reset:
    a chunk's row labels are its positions (a Parquet file may carry a pandas index)."""
    frame = frame.reset_index(drop=True)
    for column in spec.features:
        if column.name not in frame.columns or column.kind == "categorical":
            continue
        series = frame[column.name]
        if not (pd.api.types.is_string_dtype(series.dtype) or series.dtype == object):
            continue
        if column.kind == "numeric":
            parsed = pd.to_numeric(series, errors="coerce")
        else:
            lowered = series.str.lower()
            parsed = lowered.map({"true": True, "false": False})
        bad = series.notna() & parsed.isna()
        if bad.any():
            mixed = parsed.astype(object)
            mixed[bad] = series[bad]
            frame[column.name] = mixed
        else:
            frame[column.name] = parsed.astype("float64" if column.kind == "numeric" else object)
    return frame


class AtomicWriter:
    """Write chunks to a hidden temporary file beside ``path``; rename it into place only when
    the whole job succeeded, so a failed run never leaves a file that looks complete.

    With ``keep_empty=False`` a writer that got no rows leaves no file (and removes a stale one).
    """

    def __init__(self, path: Path, *, keep_empty: bool = True) -> None:
        self.path = path
        self.keep_empty = keep_empty
        self.format = file_format(path)
        if not path.parent.is_dir():
            msg = f"{path}: output folder {path.parent} does not exist"
            raise TableError(msg)
        try:
            handle, name = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=".partial", dir=path.parent
            )
        except OSError as error:
            msg = f"{path}: cannot write: {error.strerror}"
            raise TableError(msg) from None
        os.close(handle)
        self.temp = Path(name)
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame | pa.Table) -> None:
        """Append a chunk (same columns and types every time); empty chunks set the header."""
        if self._writer is not None and len(frame) == 0:
            return
        table = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame, preserve_index=False)
        )
        if self._writer is None:
            self._schema = table.schema
            if self.format == "parquet":
                # Dictionary-encode text only: for numbers (probabilities) it is wasted work
                # and took most of the write time.
                text = [f.name for f in table.schema if pa.types.is_string(f.type)]
                text += [f.name for f in table.schema if pa.types.is_large_string(f.type)]
                self._writer = pq.ParquetWriter(self.temp, table.schema, use_dictionary=text)
            else:
                self._writer = pacsv.CSVWriter(self.temp, table.schema)
        self._writer.write_table(table.cast(self._schema))
        self.rows += len(frame)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
        if kind is None and (self.rows or self.keep_empty):
            self.temp.replace(self.path)
            return
        self.temp.unlink(missing_ok=True)
        if kind is None:
            self.path.unlink(missing_ok=True)


def empty_like(columns: dict[str, np.dtype | str]) -> pd.DataFrame:
    """A zero-row frame with these column types (so an empty output still has a header)."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})
