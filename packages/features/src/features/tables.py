"""Reading CSV and Parquet files for validation, whole or in chunks (pyarrow).

CSV cells are read as their text, every column, with no conversion at all: an empty cell is
the text ``""`` and ``NA`` is ``"NA"``, so what a cell means is decided by the column's kind
(:mod:`features.columns`), as for any other door, and a rejected row can be written back
exactly as it was. Parquet columns keep their types; text columns of the spec's categorical
features are read as dictionaries, so categories are checked and encoded once per value.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.exceptions import InputError
from features.spec import FeatureSpec
from features.validation import check_names

FORMATS = {".csv": "csv", ".parquet": "parquet"}
PANDAS_INDEX = re.compile(r"__index_level_\d+__")
"""A pandas index saved as a Parquet column: not data, never read."""


def _refuse(path: Path, message: str) -> InputError:
    return InputError(str(path), [(None, None, message)], 1)


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the extension, or an :class:`InputError`."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise _refuse(
            path, f"unsupported format {path.suffix or '(none)'!r}; use .csv or .parquet"
        ) from None


@contextlib.contextmanager
def arrow_errors(path: Path) -> Iterator[None]:
    """Arrow's and the system's errors about reading ``path`` as one-line :class:`InputError`."""
    try:
        yield
    except (pa.ArrowException, OSError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise _refuse(path, f"cannot read as {file_format(path)}: {error}") from None


def read_schema(path: Path) -> pa.Schema:
    """The file's columns, in order, as they will be read (CSV: all text)."""
    if not path.is_file():
        raise _refuse(path, "file not found")
    with arrow_errors(path):
        if file_format(path) == "parquet":
            schema = pq.read_schema(path)
            index = PANDAS_INDEX.fullmatch
            return pa.schema([f for f in schema if not index(f.name)])  # no pandas metadata
        names = pacsv.open_csv(path).schema.names
    return pa.schema([(name, pa.string()) for name in names])


def check_file(path: Path, spec: FeatureSpec, *, target: bool = False) -> pa.Schema:
    """The file's schema, after the spec's checks of its header (see
    :func:`features.validation.check_names`)."""
    schema = read_schema(path)
    check_names(spec, schema.names, str(path), target=target)
    return schema


def iter_tables(
    path: Path, spec: FeatureSpec, rows: int, schema: pa.Schema | None = None
) -> Iterator[pa.Table]:
    """Every column of ``path`` in tables of ``rows`` rows (the last may be shorter); give
    ``schema`` when :func:`check_file` made it already."""
    schema = check_file(path, spec) if schema is None else schema
    pending: list[pa.RecordBatch] = []
    size = 0
    with arrow_errors(path):
        for batch in _batches(path, spec, rows, schema):
            pending.append(batch)
            size += batch.num_rows
            while size >= rows:
                table = pa.Table.from_batches(pending, schema=pending[0].schema)
                yield table.slice(0, rows)
                rest = table.slice(rows)
                pending, size = rest.to_batches(), rest.num_rows
        if size:
            yield pa.Table.from_batches(pending, schema=pending[0].schema)


def read_table(path: Path, spec: FeatureSpec, *, target: bool = False) -> pa.Table:
    """The whole file (training, evaluation), after the header checks."""
    schema = check_file(path, spec, target=target)
    tables = list(iter_tables(path, spec, 1 << 20, schema))
    with arrow_errors(path):
        return pa.concat_tables(tables) if tables else schema.empty_table()


def _batches(
    path: Path, spec: FeatureSpec, rows: int, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    if file_format(path) == "parquet":
        text = {
            f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
        }
        categorical = [c.name for c in spec.features if c.name in text and c.dictionary_text]
        # pre_buffer=False: pre-buffering keeps every row group read so far (memory grows with
        # the file, ~32 bytes per row); reading is no slower without it on local disk.
        source = pq.ParquetFile(path, read_dictionary=categorical, pre_buffer=False)
        yield from source.iter_batches(batch_size=min(rows, 65_536), columns=schema.names)
        return
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(schema.names, pa.string()), strings_can_be_null=False
    )
    convert.null_values = []
    reader = pacsv.open_csv(
        path, convert_options=convert, read_options=pacsv.ReadOptions(block_size=4 << 20)
    )
    yield from reader
