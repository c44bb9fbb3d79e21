"""Atomic writes of CSV and Parquet files, chunk by chunk (pyarrow); reading is
:mod:`features`' (``features.iter_tables``), by the spec's rules."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import features
from features import PLAIN_NUMBER, InputError
from serving.exceptions import TableError

FORMULA_START = r"^[=+\-@\t\r]"
"""A CSV cell starting like this is run as a formula by spreadsheets (OWASP's list), unless it
is a plain number (``features.PLAIN_NUMBER``), such as ``-5`` or ``+1.5e3``."""


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the extension (:func:`features.file_format`), or a
    :class:`TableError`."""
    try:
        return features.file_format(path)
    except InputError as error:
        msg = f"{path}: {error.problems[0][2]}"
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


def plain(kind: pa.DataType) -> pa.DataType:
    """The type a column is written as: string views as strings, dictionaries as their values."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.string() if str(kind) == "string_view" else kind


@contextlib.contextmanager
def arrow_errors(path: Path, doing: str = "read") -> Iterator[None]:
    """Arrow's errors about ``path`` as one-line :class:`TableError` messages."""
    try:
        yield
    except (pa.ArrowException, OSError, ValueError) as error:
        msg = f"{path}: cannot {doing} as {file_format(path)}: {error}"
        raise TableError(msg) from None


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


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs (whoever owns it)."""
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
    formulas are neutralised (see :func:`neutralised`) in the ``neutralise`` columns: the text
    the scorer makes (labels); columns copied from the input are written exactly as read. The
    file gets the mode the umask gives. With ``keep_empty=False`` a writer that got no rows
    leaves no file (and removes a stale one).
    """

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        keep_empty: bool = True,
        neutralise: Collection[str] = (),
    ) -> None:
        self.path = path
        self.schema = schema
        self.neutralise = [
            i for i, f in enumerate(schema) if f.name in neutralise and pa.types.is_string(f.type)
        ]
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
        try:
            if self.format == "parquet":
                # Dictionary-encode text only: for numbers (probabilities) it is wasted work
                # and took most of the write time.
                text = [f.name for f in schema if pa.types.is_string(f.type)]
                self._writer = pq.ParquetWriter(self.temp, schema, use_dictionary=text)
            else:
                self._writer = pacsv.CSVWriter(self.temp, schema)
        except (OSError, pa.ArrowException) as error:  # a column CSV cannot hold (a list...)
            self.temp.unlink(missing_ok=True)
            msg = f"{path}: cannot write as {self.format}: {error}"
            raise TableError(msg) from None
        self.rows = 0

    def _reclaim(self) -> None:
        pattern = f".{glob.escape(self.path.name)}.*.partial"
        for stale in self.path.parent.glob(pattern):
            pid = stale.name[len(self.path.name) + 2 :].split(".", 1)[0]
            if pid.isdigit() and not process_alive(int(pid)):
                stale.unlink(missing_ok=True)

    def write(self, table: pa.Table) -> None:
        """Append rows with the writer's columns (cast to its types)."""
        if table.num_rows == 0:
            return
        if table.column_names != self.schema.names:
            table = table.select(self.schema.names)
        table = table.cast(self.schema)
        if self.format == "csv":
            for index in self.neutralise:
                table = table.set_column(index, self.schema[index], neutralised(table[index]))
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
