"""Batch scoring of CSV or Parquet files of any size, in bounded memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from features import FeatureSpec, check_file, iter_tables, validate
from model import Artifact, inside_an_artifact
from serving.exceptions import TableError
from serving.settings import DEFAULT_CHUNK_ROWS
from serving.tabular import AtomicWriter, arrow_errors, check_paths, plain


@dataclass(frozen=True)
class BatchSummary:
    """What a scoring run did; ``scored + rejected == input`` always holds."""

    input_rows: int
    scored_rows: int
    rejected_rows: int
    output: Path
    rejects: Path | None
    seconds: float

    def line(self) -> str:
        """The one-line summary the command prints."""
        where = f" (reasons in {self.rejects})" if self.rejects else ""
        rate = self.input_rows / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.input_rows} input rows = {self.scored_rows} scored + {self.rejected_rows} "
            f"rejected{where}; wrote {self.output} in {self.seconds:.1f}s ({rate:,.0f} rows/s)"
        )


def rejects_path(output: Path) -> Path:
    """``scores.csv`` -> ``scores.rejects.csv``, beside the output."""
    return output.with_name(f"{output.stem}.rejects{output.suffix}")


def check_outside(**outputs: Path) -> None:
    """Refuse, before anything is written, an output that is an artifact's folder or inside
    one (any artifact, not only the one in use; also through a link, see
    :func:`model.inside_an_artifact`): an artifact holds only the files its manifest lists,
    and one more would have it refused the next time it is loaded."""
    for role, path in outputs.items():
        folder = inside_an_artifact(path)
        if folder is not None:
            msg = (
                f"{path}: the {role} path is inside the artifact folder {folder}, which holds "
                "the model's own files only; write it elsewhere"
            )
            raise TableError(msg)


def _carried(spec: FeatureSpec, schema: pa.Schema, keep: Sequence[str], path: Path) -> list[str]:
    """The input columns copied into the output: the spec's id column when the file has it,
    then ``keep``, which the file must have."""
    missing = [name for name in keep if name not in schema.names]
    if missing:
        msg = f"{path}: --keep names column(s) the file does not have: {', '.join(missing)}"
        raise TableError(msg)
    named = [spec.id_column] if spec.id_column and spec.id_column in schema.names else []
    return list(dict.fromkeys([*named, *keep]))


def _unique(schema: pa.Schema, path: Path) -> pa.Schema:
    repeated = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if repeated:
        msg = (
            f"{path}: would hold the column(s) {', '.join(repeated)} twice: an input column "
            "copied into it has the name of a column the scorer writes; rename it in the input"
        )
        raise TableError(msg)
    return schema


def output_schema(artifact: Artifact, carried: list[pa.Field]) -> pa.Schema:
    """``row`` (the 0-based input row), the carried columns, the prediction, one probability
    per class (classifiers), the model version."""
    label = pa.string() if artifact.classes else pa.float64()
    return pa.schema(
        [
            pa.field("row", pa.int64()),
            *carried,
            pa.field("prediction", label),
            *[pa.field(f"probability_{name}", pa.float64()) for name in artifact.classes],
            pa.field("model_version", pa.string()),
        ]
    )


REJECT_INFO = ("row", "reasons")
"""The columns the rejects file adds before the input's own."""


def rejects_schema(schema: pa.Schema, path: Path) -> pa.Schema:
    """``row``, ``reasons``, then every input column as it was read, in the input's order (its
    names may repeat: an export's blank headers); the input may not have a ``row`` or
    ``reasons`` column of its own."""
    clash = [name for name in schema.names if name in REJECT_INFO]
    if clash:
        msg = (
            f"{path}: the input has column(s) {', '.join(clash)}, the names of the columns the "
            "rejects file adds; rename them in the input"
        )
        raise TableError(msg)
    fields = [pa.field(f.name, plain(f.type)) for f in schema]
    return pa.schema([pa.field("row", pa.int64()), pa.field("reasons", pa.string()), *fields])


def _take(column: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """The given rows of an input column (Arrow has no ``take`` for string views)."""
    if plain(column.type) != column.type and not pa.types.is_dictionary(column.type):
        column = column.cast(plain(column.type))
    return column.take(rows)


def _scored(
    artifact: Artifact, table: pa.Table, offset: int, carried: list[str], source: Path
) -> tuple[pa.Table, pa.Table]:
    """The scored rows and the rejected rows (reasons, and the row as read), as Arrow tables
    (no pandas on the hot path). Rows the model gives no finite prediction for are rejected
    with that reason."""
    result = validate(artifact.spec, table, source=str(source))
    predicted = artifact.predict(result.valid)
    scored = predicted.rows
    columns = {"row": pa.array(scored + offset, pa.int64())}
    for name in carried:
        columns[name] = _take(table[name], scored)
    proba = predicted.probabilities
    columns["prediction"] = pa.array(
        predicted.labels, type=pa.float64() if proba is None else pa.string()
    )
    if proba is not None:
        for index, name in enumerate(artifact.classes):
            columns[f"probability_{name}"] = pa.array(proba[:, index], type=pa.float64())
    columns["model_version"] = pa.repeat(pa.scalar(artifact.version), len(scored))
    rows, reasons = result.report.reasons_by_row()
    if len(predicted.refused):  # in input order, with the rows validation refused
        rows, reasons = (
            np.concatenate([rows, predicted.refused]),
            np.concatenate([reasons, predicted.reasons]),
        )
        order = np.argsort(rows, kind="stable")
        rows, reasons = rows[order], reasons[order]
    rejected = pa.Table.from_arrays(  # by position: input column names may repeat
        [
            pa.array(rows + offset, pa.int64()),
            pa.array(reasons, type=pa.string()),
            *[_take(table.column(i), rows) for i in range(table.num_columns)],
        ],
        names=["row", "reasons", *table.column_names],
    )
    return pa.table(columns), rejected


def _prefetched(chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Read the next chunk in a background thread while the caller scores this one (Arrow
    decodes and writes without holding the GIL, so reading, scoring and writing overlap)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader") as reader:
        upcoming = reader.submit(next, chunks, None)
        while (chunk := upcoming.result()) is not None:
            upcoming = reader.submit(next, chunks, None)
            yield chunk


def _write(out: AtomicWriter, scored: pa.Table, bad: AtomicWriter, rejected: pa.Table) -> None:
    out.write(scored)
    bad.write(rejected)


def score_file(
    artifact: Artifact,
    source: Path,
    output: Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep: Sequence[str] = (),
    progress: Callable[[int], None] = lambda _: None,
) -> BatchSummary:
    """Score ``source`` into ``output`` chunk by chunk; invalid rows go to the rejects file.

    The input is read and validated by the spec's rules (``features``): a file without a spec
    column, or with a column the spec does not name (unless it says to ignore them), is refused
    before anything is written. The output holds ``row`` (the 0-based input row), the spec's id
    column and the ``keep`` columns as read, the prediction, one ``probability_<class>`` per
    class for classifiers, and ``model_version``. The rejects file holds ``row``, ``reasons``
    and every input column exactly as read. Neither output may be the input, or inside an
    artifact's folder.
    """
    if chunk_rows < 1:
        msg = f"chunk_rows must be at least 1, got {chunk_rows}"
        raise TableError(msg)
    rejects = rejects_path(output)
    check_outside(output=output, rejects=rejects)
    check_paths(source, output=output, rejects=rejects)
    started = time.perf_counter()
    spec = artifact.spec
    schema = check_file(source, spec)
    carried = _carried(spec, schema, keep, source)
    fields = [pa.field(name, plain(schema.field(name).type)) for name in carried]
    scored_schema = _unique(output_schema(artifact, fields), output)
    rejected_schema = rejects_schema(schema, rejects)
    offset = scored_rows = rejected_rows = 0
    with (
        AtomicWriter(output, scored_schema, neutralise=["prediction"]) as out,
        AtomicWriter(rejects, rejected_schema, keep_empty=False) as bad,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer") as writer,
    ):
        written: Future[None] | None = None
        for table in _prefetched(iter_tables(source, spec, chunk_rows, schema)):
            with arrow_errors(source, "score"):
                scored, rejected = _scored(artifact, table, offset, carried, source)
            if written is not None:
                written.result()  # one chunk in flight at most: memory stays bounded
            written = writer.submit(_write, out, scored, bad, rejected)
            scored_rows += scored.num_rows
            rejected_rows += rejected.num_rows
            offset += table.num_rows
            progress(table.num_rows)
        if written is not None:
            written.result()
    if scored_rows + rejected_rows != offset:  # pragma: no cover - an invariant, not a branch
        msg = f"lost rows: {offset} read, {scored_rows} scored, {rejected_rows} rejected"
        raise RuntimeError(msg)
    return BatchSummary(
        input_rows=offset,
        scored_rows=scored_rows,
        rejected_rows=rejected_rows,
        output=output,
        rejects=rejects if rejected_rows else None,
        seconds=time.perf_counter() - started,
    )
