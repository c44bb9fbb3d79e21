"""Batch scoring of CSV or Parquet files of any size, in bounded memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features import FeatureSpec, frame_columns, validate_frame
from model import Artifact
from serving.exceptions import TableError
from serving.settings import DEFAULT_CHUNK_ROWS
from serving.tabular import (
    AtomicWriter,
    Chunk,
    arrow_errors,
    check_paths,
    input_schema,
    plain,
    read_chunks,
)


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


def _key_field(spec: FeatureSpec, schema: pa.Schema) -> pa.Field | None:
    """The spec's id column as the file types it; None when rows are keyed by ``row``, the
    0-based input row number."""
    if spec.id_column is None or spec.id_column not in schema.names:
        return None
    return pa.field(spec.id_column, plain(schema.field(spec.id_column).type))


def _unique(schema: pa.Schema, path: Path, spec: FeatureSpec) -> pa.Schema:
    repeated = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if repeated:
        msg = (
            f"{path}: the spec's id column {spec.id_column!r} has the name of a column this "
            f"file gets ({', '.join(repeated)}); rename the id column in the feature spec"
        )
        raise TableError(msg)
    return schema


def output_schema(artifact: Artifact, key: pa.Field) -> pa.Schema:
    """Key, prediction, one probability per class (classifiers), model version."""
    label = pa.string() if artifact.classes else pa.float64()
    return pa.schema(
        [
            key,
            pa.field("prediction", label),
            *[pa.field(f"probability_{name}", pa.float64()) for name in artifact.classes],
            pa.field("model_version", pa.string()),
        ]
    )


def rejects_schema(spec: FeatureSpec, key: pa.Field) -> pa.Schema:
    """Key, reasons, and each feature's value as it was read (text)."""
    features = [pa.field(name, pa.string()) for name in spec.feature_names]
    return pa.schema([key, pa.field("reasons", pa.string()), *features])


def _scored(
    artifact: Artifact, chunk: Chunk, key_name: str, key: pa.Array | pa.ChunkedArray
) -> tuple[pa.Table, pa.Table]:
    """The scored rows and the rejected rows (reasons and values as read), as Arrow tables
    (no pandas strings on the hot path)."""
    result = validate_frame(artifact.spec, chunk.frame)
    valid = result.valid
    labels, proba = (
        artifact.predict_valid(frame_columns(valid, artifact.spec.feature_names))
        if len(valid)
        else (np.array([], dtype=object), np.zeros((0, len(artifact.classes))))
    )
    columns = {
        key_name: key.take(valid.index.to_numpy()),
        "prediction": pa.array(labels, type=pa.float64() if proba is None else pa.string()),
    }
    if proba is not None:
        for index, name in enumerate(artifact.classes):
            columns[f"probability_{name}"] = pa.array(proba[:, index], type=pa.float64())
    columns["model_version"] = pa.repeat(pa.scalar(artifact.version), len(valid))
    reasons = result.report.reasons_by_row()
    rows = reasons["row"].to_numpy()
    rejected = {
        key_name: key.take(rows),
        "reasons": pa.array(reasons["reasons"].to_numpy(object), type=pa.string()),
    }
    for name in artifact.spec.feature_names:
        rejected[name] = (
            pc.cast(chunk.raw[name].take(rows), pa.string())
            if name in chunk.raw.column_names
            else pa.nulls(len(rows), pa.string())
        )
    return pa.table(columns), pa.table(rejected)


def _prefetched(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
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
    progress: Callable[[int], None] = lambda _: None,
) -> BatchSummary:
    """Score ``source`` into ``output`` chunk by chunk; invalid rows go to the rejects file.

    The output holds the spec's id column (or ``row``, the 0-based input row number), the
    prediction, one ``probability_<class>`` per class for classifiers, and ``model_version``.
    Neither output may be the input (checked before anything is written).
    """
    if chunk_rows < 1:
        msg = f"chunk_rows must be at least 1, got {chunk_rows}"
        raise TableError(msg)
    rejects = rejects_path(output)
    check_paths(source, output=output, rejects=rejects)
    started = time.perf_counter()
    spec = artifact.spec
    schema = input_schema(source, spec)
    key_field = _key_field(spec, schema)
    numbered = key_field is None
    key_field = key_field or pa.field("row", pa.int64())
    scored_schema = _unique(output_schema(artifact, key_field), output, spec)
    rejected_schema = _unique(rejects_schema(spec, key_field), rejects, spec)
    offset = scored_rows = rejected_rows = 0
    with (
        AtomicWriter(output, scored_schema) as out,
        AtomicWriter(rejects, rejected_schema, keep_empty=False) as bad,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer") as writer,
    ):
        written: Future[None] | None = None
        for chunk in _prefetched(read_chunks(source, spec, chunk_rows, schema)):
            n = chunk.raw.num_rows
            key = (
                pa.array(np.arange(offset, offset + n, dtype=np.int64))
                if numbered
                else pc.cast(chunk.raw[key_field.name], key_field.type)
            )
            with arrow_errors(source, "score"):
                scored, rejected = _scored(artifact, chunk, key_field.name, key)
            if written is not None:
                written.result()  # one chunk in flight at most: memory stays bounded
            written = writer.submit(_write, out, scored, bad, rejected)
            scored_rows += scored.num_rows
            rejected_rows += rejected.num_rows
            offset += n
            progress(n)
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
