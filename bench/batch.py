"""Batch scoring: `serving score` file to file against a bare predict on rows already in memory,
and peak memory at 1M and 10M rows (each in its own process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import median, report, timed
from bench.data import penguins_like, write_parquet
from features import validate
from model import Artifact
from serving import DEFAULT_CHUNK_ROWS, score_file

_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _peak_rss_mib(command: list[str]) -> float:
    """Peak RSS of ``command``, started from a small launcher process: Linux carries the RSS a
    process had before ``exec`` into its peak, so starting it from this (big) benchmark
    process would report our own memory instead of the scorer's."""
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True, check=True
    )
    status, kib = out.stdout.split()
    if status != "0":
        msg = f"{' '.join(command[:4])} failed with status {status}"
        raise RuntimeError(msg)
    return int(kib) / 1024


def run(
    artifact: Artifact,
    work: Path,
    *,
    rows: int = 1_000_000,
    big_rows: int = 10_000_000,
    runs: int = 3,
) -> None:
    """Throughput ratio at ``rows`` and memory at ``rows`` and ``big_rows``."""
    source = write_parquet(work / "batch.parquet", rows, seed=1)
    frame = penguins_like(rows, seed=1)
    X = validate(artifact.spec, frame).valid.frame()[artifact.spec.feature_names]
    pipeline = artifact.pipeline  # loaded (scikit-learn imported) before the clock starts
    bare = median(timed(lambda: pipeline.predict_proba(X), runs))
    scored = median(timed(lambda: score_file(artifact, source, work / "scores.parquet"), runs))
    big = write_parquet(work / "big.parquet", big_rows, seed=2)
    command = [sys.executable, "-m", "serving.cli", "score", "--artifact", str(artifact.path)]
    peak_small = _peak_rss_mib([*command, str(source), str(work / "s.parquet")])
    peak_big = _peak_rss_mib([*command, str(big), str(work / "b.parquet")])
    ratio = bare / scored
    memory = peak_big / peak_small
    report(
        f"batch scoring, {rows:,} rows, chunks of {DEFAULT_CHUNK_ROWS:,} (median of {runs})",
        [
            ("bare pipeline.predict_proba, in memory", f"{rows / bare:,.0f} rows/s ({bare:.2f} s)"),
            (
                "serving score, Parquet file to file",
                f"{rows / scored:,.0f} rows/s ({scored:.2f} s)",
            ),
            (f"peak RSS at {rows:,} rows", f"{peak_small:,.0f} MiB"),
            (f"peak RSS at {big_rows:,} rows", f"{peak_big:,.0f} MiB"),
        ],
        f"throughput {ratio:.2f}x of bare predict (target >= 0.8: "
        f"{'met' if ratio >= 0.8 else 'NOT met'}); memory {big_rows // rows}x rows -> "
        f"{memory:.2f}x RSS (target <= 1.2: {'met' if memory <= 1.2 else 'NOT met'})",
    )
