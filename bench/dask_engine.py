"""The Dask engine on a local cluster of 2 worker processes against the local engine, on the
same multi-file Parquet dataset: rows/s, and each worker's peak memory."""

from __future__ import annotations

import time
from pathlib import Path

from distributed import LocalCluster

from bench.common import report
from bench.data import write_parquet
from model import Artifact
from serving import score_dataset, score_file


def run(artifact: Artifact, work: Path, *, files: int = 10, rows_per_file: int = 1_000_000) -> None:
    """``files`` Parquet files of ``rows_per_file`` rows: scored file after file by the local
    engine, then by the Dask engine on 2 local worker processes."""
    dataset = work / "dataset"
    dataset.mkdir()
    for index in range(files):
        write_parquet(dataset / f"part-{index:03d}.parquet", rows_per_file, seed=100 + index)
    total = files * rows_per_file
    started = time.perf_counter()
    for index, path in enumerate(sorted(dataset.glob("*.parquet"))):
        score_file(artifact, path, work / f"local-{index:03d}.parquet")
    local = time.perf_counter() - started
    summary = score_dataset(artifact, dataset, work / "scores", chunk_rows=200_000, workers=2)
    assert summary.input_rows == total, summary
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, dashboard_address=None
    )
    with cluster:
        address = cluster.scheduler_address
        score_dataset(artifact, dataset, work / "warm", chunk_rows=200_000, scheduler=address)
        running = score_dataset(
            artifact, dataset, work / "warm", chunk_rows=200_000, scheduler=address
        )
    ratio = local / running.seconds
    peaks = ", ".join(f"{p:,.0f}" for p in (*summary.peak_rss_mib, *running.peak_rss_mib))
    report(
        f"Dask engine, {files} files x {rows_per_file:,} rows, 2 local worker processes",
        [
            ("local engine, file after file", f"{total / local:,.0f} rows/s ({local:.1f} s)"),
            (
                "Dask engine, its own local cluster (start-up included)",
                f"{total / summary.seconds:,.0f} rows/s ({summary.seconds:.1f} s)",
            ),
            (
                "Dask engine, a running cluster (--scheduler; workers warm)",
                f"{total / running.seconds:,.0f} rows/s ({running.seconds:.1f} s)",
            ),
            ("peak RSS of the worker processes", f"{peaks} MiB"),
        ],
        f"Dask on a running cluster {ratio:.2f}x the local engine, "
        f"{local / summary.seconds:.2f}x with its start-up (target >= 1.5: "
        f"{'met' if ratio >= 1.5 else 'NOT met'}); a worker's peak follows the file it scores "
        f"({rows_per_file:,} rows, in chunks of 200,000), not the dataset ({total:,} rows)",
    )
