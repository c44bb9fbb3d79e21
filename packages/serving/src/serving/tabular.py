"""Streaming reads and atomic writes of CSV and Parquet files, chunk by chunk (pyarrow)."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features import NULL_TEXT, FeatureSpec
from serving.exceptions import TableError

FORMATS = {".csv": "csv", ".parquet": "parquet"}

FORMULA_START = r"^[=+\-@\t\r]"
"""A CSV cell starting like this is run as a formula by spreadsheets (OWASP's list)..."""
PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
"""... unless it is a plain number, such as ``-5`` or ``+1.5e3``."""


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the extension, or a :class:`TableError`."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        msg = f"{path}: unsupported format {path.suffix or '(none)'!r}; use .csv or .parquet"
        raise TableError(msg) from None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symbolic link loop (3.11, 3.12)
        msg = f"{path}: cannot resolve the path ({error})"
        raise TableError(msg) from None


def _same_file(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_paths(source: Path, **outputs: Path) -> None:
    """Refuse, before anything is written, outputs that are the input or each other (also
    through links), folders, or links that lead nowhere."""
    if not source.is_file():
        msg = f"{source}: input file not found"
        raise TableError(msg)
    named = list(outputs.items())
    for index, (role, path) in enumerate(named):
        file_format(path)
        if path.is_dir():
            msg = f"{path}: the {role} path is a folder; give a file name"
            raise TableError(msg)
        if _same_file(path, source):
            msg = f"{path}: the {role} file would overwrite the input {source}; choose another name"
            raise TableError(msg)
        for other_role, other in named[index + 1 :]:
            if _same_file(path, other):
                msg = f"{path}: the {role} and {other_role} files would be the same file"
                raise TableError(msg)
        if path.is_symlink() and not path.exists():
            msg = f"{path}: cannot resolve the path (a broken or looping symbolic link)"
            raise TableError(msg)


@dataclass(frozen=True)
class Chunk:
    """Rows of the input: ``raw`` as read (CSV cells as their original text), ``frame`` typed
    for validation and indexed 0..n-1."""

    raw: pa.Table
    frame: pd.DataFrame


def _used(spec: FeatureSpec) -> list[str]:
    return [*spec.feature_names, *([spec.id_column] if spec.id_column else [])]


def plain(kind: pa.DataType) -> pa.DataType:
    """The type a column is read as: string views as strings, dictionaries as their values."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.string() if str(kind) == "string_view" else kind


def _plain_table(table: pa.Table) -> pa.Table:
    views = [i for i, field in enumerate(table.schema) if str(field.type) == "string_view"]
    for index in views:
        table = table.set_column(
            index, table.schema[index].name, pc.cast(table[index], pa.string())
        )
    return table


def _check_columns(path: Path, schema: pa.Schema, used: list[str]) -> None:
    """Refuse repeated or nested spec columns with a message, not a failure deep in a read."""
    for name in used:
        count = schema.names.count(name)
        if count > 1:
            msg = f"{path}: column {name!r} appears {count} times; column names must be unique"
            raise TableError(msg)
        if count == 0:
            continue
        kind = plain(schema.field(name).type)
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            msg = (
                f"{path}: column {name!r} has type {kind}; a spec column must hold numbers, "
                "text or booleans"
            )
            raise TableError(msg)


def input_schema(path: Path, spec: FeatureSpec) -> pa.Schema:
    """The schema of the columns scoring reads (CSV spec columns as text), checked."""
    with arrow_errors(path):
        if file_format(path) == "parquet":
            schema = pq.read_schema(path)
            _check_columns(path, schema, _used(spec))
            return pa.schema([schema.field(n) for n in schema.names if n in _used(spec)])
        names = pacsv.open_csv(path).schema.names
    _check_columns(path, pa.schema([(n, pa.string()) for n in names]), _used(spec))
    return pa.schema([(n, pa.string()) for n in names if n in _used(spec)])


@contextlib.contextmanager
def arrow_errors(path: Path, doing: str = "read") -> Iterator[None]:
    """Arrow's errors about ``path`` as one-line :class:`TableError` messages."""
    try:
        yield
    except (pa.ArrowException, OSError, ValueError) as error:
        msg = f"{path}: cannot {doing} as {file_format(path)}: {error}"
        raise TableError(msg) from None


def _batches(
    path: Path, spec: FeatureSpec, rows: int, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    columns = schema.names  # none at all still gives the row count
    if file_format(path) == "parquet":
        # Text categories straight into Arrow dictionaries.
        categorical = [c.name for c in spec.features if c.kind == "categorical"]
        # pre_buffer=False: pre-buffering keeps every row group read so far (memory grows with
        # the file, ~32 bytes per row here); reading is no slower without it on local disk.
        source = pq.ParquetFile(
            path, read_dictionary=[n for n in categorical if n in columns], pre_buffer=False
        )
        yield from source.iter_batches(batch_size=min(rows, 65_536), columns=columns)
        return
    # Spec columns are read as text and typed by `_frame`, so one bad value in a numeric column
    # becomes one rejected row, not a failed block. Only the listed texts are nulls: never
    # "NaN" or "inf", which are refused as numbers (as over HTTP).
    if not columns:  # no spec column: read the first one as text, to count the rows
        columns = pacsv.open_csv(path).schema.names[:1]
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        null_values=list(NULL_TEXT),
        strings_can_be_null=True,
    )
    reader = pacsv.open_csv(
        path, convert_options=convert, read_options=pacsv.ReadOptions(block_size=4 << 20)
    )
    yield from reader


def read_chunks(
    path: Path, spec: FeatureSpec, chunk_rows: int, schema: pa.Schema | None = None
) -> Iterator[Chunk]:
    """Yield chunks of ``chunk_rows`` rows (the last may be shorter); ``schema`` is
    :func:`input_schema`'s, when the caller has it already."""
    pending: list[pa.RecordBatch] = []
    size = 0
    with arrow_errors(path):
        schema = input_schema(path, spec) if schema is None else schema
        for batch in _batches(path, spec, chunk_rows, schema):
            pending.append(batch)
            size += batch.num_rows
            while size >= chunk_rows:
                table = _plain_table(pa.Table.from_batches(pending))
                head = table.slice(0, chunk_rows)
                yield Chunk(head, _frame(head, spec))
                rest = table.slice(chunk_rows)
                pending, size = rest.to_batches(), rest.num_rows
        if size:
            table = _plain_table(pa.Table.from_batches(pending))
            yield Chunk(table, _frame(table, spec))


def _frame(table: pa.Table, spec: FeatureSpec) -> pd.DataFrame:
    """A chunk as pandas, typed for validation, indexed 0..n-1 (a Parquet file may carry a
    pandas index). Text in numeric columns (CSV) is parsed by Arrow, exactly (correctly
    rounded) and the same way whatever else the chunk holds; a cell that is not a plain number
    (``abc``, ``3,750``, ``NaN``, ``inf``) stays text, so validation reports its row. Text in
    categorical columns arrives as pandas categoricals: Arrow encodes it in C, so no Python
    string is made per row, and validation and encoding then work once per distinct value."""
    not_numbers: dict[str, tuple[pa.ChunkedArray, pa.ChunkedArray]] = {}
    for column in spec.features:
        if column.kind == "boolean" or column.name not in table.column_names:
            continue
        index = table.schema.get_field_index(column.name)
        kind = table.schema[index].type
        if column.kind == "numeric" and pa.types.is_decimal(kind):
            table = table.set_column(index, column.name, pc.cast(table[index], pa.float64()))
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            continue
        elif column.kind == "categorical":
            table = table.set_column(index, column.name, pc.dictionary_encode(table[index]))
        else:
            text = table[index]
            number = pc.match_substring_regex(text, PLAIN_NUMBER)
            if not pc.all(number).as_py():
                not_numbers[column.name] = (text, number)
                text = pc.if_else(number, text, "0")  # those cells are put back as text below
            table = table.set_column(index, column.name, pc.cast(text, pa.float64()))
    # No pandas metadata: it would restore the file's dtypes (text) and index over ours.
    frame = table.replace_schema_metadata(None).to_pandas()
    if not table.num_columns:  # no spec column at all: still one row per input row
        frame = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for name, (text, number) in not_numbers.items():
        mixed = frame[name].astype(object)
        bad = pc.invert(pc.fill_null(number, True)).to_numpy(zero_copy_only=False)
        mixed[bad] = text.to_numpy(zero_copy_only=False)[bad]
        frame[name] = mixed
    return _booleans(frame, spec)


def _booleans(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Boolean text (CSV) as booleans: ``true``/``false`` in any case; anything else stays
    text, so validation reports its row."""
    for column in spec.features:
        if column.kind != "boolean" or column.name not in frame.columns:
            continue
        series = frame[column.name]
        if pd.api.types.infer_dtype(series, skipna=True) != "string":  # booleans (Parquet)
            continue
        parsed = series.str.lower().map({"true": True, "false": False})
        bad = series.notna() & parsed.isna()
        mixed = parsed.astype(object)
        mixed[bad] = series[bad]
        frame[column.name] = mixed
    return frame


def _risky(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.and_(
        pc.match_substring_regex(column, FORMULA_START),
        pc.invert(pc.match_substring_regex(column, PLAIN_NUMBER)),
    )


def neutralised(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Text a spreadsheet would run as a formula, prefixed with ``'`` (plain numbers kept).
    The patterns run on the distinct values first: labels and the model version repeat, and
    most columns hold nothing to neutralise (10x cheaper than matching every row)."""
    if not pc.any(_risky(pc.unique(column))).as_py():
        return column
    quote, nothing = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(_risky(column), pc.binary_join_element_wise(quote, column, nothing), column)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicWriter:
    """Write chunks to a hidden ``.<name>.<pid>.<random>.partial`` file beside ``path``; rename
    it into place only when the whole job succeeded, so a failed run never leaves a file that
    looks complete. Partial files of processes that no longer run (killed ones) are removed.

    The columns and their types are fixed by ``schema``, up front: what is written never
    depends on what the first chunk held. In CSV, text cells that a spreadsheet would run as
    formulas are neutralised (see :func:`neutralised`). The file gets the mode the umask
    gives. With ``keep_empty=False`` a writer that got no rows leaves no file (and removes a
    stale one).
    """

    def __init__(self, path: Path, schema: pa.Schema, *, keep_empty: bool = True) -> None:
        self.path = path
        self.schema = schema
        self.keep_empty = keep_empty
        self.format = file_format(path)
        if not path.parent.is_dir():
            msg = f"{path}: output folder {path.parent} does not exist"
            raise TableError(msg)
        self._reclaim()
        self.temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
        try:
            os.close(os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as error:
            msg = f"{path}: cannot write: {error.strerror}"
            raise TableError(msg) from None
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        if self.format == "parquet":
            # Dictionary-encode text only: for numbers (probabilities) it is wasted work and
            # took most of the write time.
            text = [f.name for f in schema if pa.types.is_string(f.type)]
            self._writer = pq.ParquetWriter(self.temp, schema, use_dictionary=text)
        else:
            self._writer = pacsv.CSVWriter(self.temp, schema)
        self.rows = 0

    def _reclaim(self) -> None:
        pattern = f".{glob.escape(self.path.name)}.*.partial"
        for stale in self.path.parent.glob(pattern):
            pid = stale.name[len(self.path.name) + 2 :].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                stale.unlink(missing_ok=True)

    def write(self, table: pa.Table) -> None:
        """Append rows with the writer's columns (cast to its types)."""
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        if self.format == "csv":
            for index, field in enumerate(self.schema):
                if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                    table = table.set_column(index, field, neutralised(table[index]))
        with self._write_errors():
            self._writer.write_table(table)
        self.rows += table.num_rows

    @contextlib.contextmanager
    def _write_errors(self) -> Iterator[None]:
        try:
            yield
        except (OSError, pa.ArrowException) as error:  # a full disk, a lost mount
            msg = f"{self.path}: cannot write: {getattr(error, 'strerror', None) or error}"
            raise TableError(msg) from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            with self._write_errors():
                self._writer.close()
        finally:
            if kind is None and (self.rows or self.keep_empty):
                self.temp.replace(self.path)
            else:
                self.temp.unlink(missing_ok=True)
                if kind is None:
                    self.path.unlink(missing_ok=True)
