"""Batch scoring of CSV or Parquet files of any size, in bounded memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features import validate_frame
from features.compiled import frame_columns
from model import Artifact
from serving.exceptions import TableError
from serving.settings import DEFAULT_CHUNK_ROWS
from serving.tabular import AtomicWriter, file_format, read_chunks


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


def _scored(
    artifact: Artifact, chunk: pd.DataFrame, key: pd.Series
) -> tuple[pa.Table, pd.DataFrame]:
    """The scored rows as an Arrow table (no pandas strings on the hot path), and the rejected
    rows with their reasons and raw values as a frame."""
    result = validate_frame(artifact.spec, chunk)
    valid = result.valid
    labels, proba = (
        artifact.predict_valid(frame_columns(valid, artifact.spec.feature_names))
        if len(valid)
        else (np.array([], dtype=object), np.zeros((0, len(artifact.classes))))
    )
    columns = {
        str(key.name): pa.Array.from_pandas(key.iloc[valid.index.to_numpy()]),
        "prediction": pa.array(labels, type=pa.float64() if proba is None else pa.string()),
    }
    if proba is not None:
        for index, name in enumerate(artifact.classes):
            columns[f"probability_{name}"] = pa.array(proba[:, index], type=pa.float64())
    columns["model_version"] = pa.repeat(pa.scalar(artifact.version), len(valid))
    reasons = result.report.reasons_by_row()
    rows = reasons["row"].to_numpy()
    rejected = pd.DataFrame({key.name: key.to_numpy()[rows], "reasons": reasons["reasons"]})
    for name in artifact.spec.feature_names:
        if name in chunk.columns:
            raw = chunk[name].iloc[rows].tolist()
            rejected[name] = pd.Series([None if pd.isna(v) else str(v) for v in raw], dtype=object)
    return pa.table(columns), rejected


def _prefetched(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Read the next chunk in a background thread while the caller scores this one (Arrow
    decodes and writes without holding the GIL, so reading, scoring and writing overlap)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader") as reader:
        upcoming = reader.submit(next, chunks, None)
        while (chunk := upcoming.result()) is not None:
            upcoming = reader.submit(next, chunks, None)
            yield chunk


def _write(out: AtomicWriter, scored: pa.Table, bad: AtomicWriter, rejected: pd.DataFrame) -> None:
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
    """
    if chunk_rows < 1:
        msg = f"chunk_rows must be at least 1, got {chunk_rows}"
        raise TableError(msg)
    file_format(source)
    file_format(output)
    if source.resolve() == output.resolve():
        msg = f"{output}: output would overwrite the input"
        raise TableError(msg)
    started = time.perf_counter()
    id_column = artifact.spec.id_column
    offset = scored_rows = rejected_rows = 0
    rejects = rejects_path(output)
    with (
        AtomicWriter(output) as out,
        AtomicWriter(rejects, keep_empty=False) as bad,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer") as writer,
    ):
        written: Future[None] | None = None
        for chunk in _prefetched(read_chunks(source, artifact.spec, chunk_rows)):
            if id_column and id_column in chunk.columns:
                key = chunk[id_column]
            else:
                key = pd.Series(np.arange(offset, offset + len(chunk), dtype=np.int64), name="row")
            scored, rejected = _scored(artifact, chunk, key)
            if written is not None:
                written.result()  # one chunk in flight at most: memory stays bounded
            written = writer.submit(_write, out, scored, bad, rejected)
            scored_rows += len(scored)
            rejected_rows += len(rejected)
            offset += len(chunk)
            progress(len(chunk))
        if written is not None:
            written.result()
        if offset == 0:
            out.write(pd.DataFrame({"row": pd.Series(dtype=np.int64)}))
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
