"""Start-up: process start to `/ready` 200; training time; artifact load time."""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import ROOT, median, report, timed
from model import Artifact, TrainConfig, load_artifact, train
from serving.testing import ServerProcess


def run_startup(artifact: Artifact, work: Path, *, runs: int = 3) -> None:
    """Median seconds from `serving serve` process start to the first 200 from /ready."""
    seconds = []
    for index in range(runs):
        started = time.perf_counter()
        with ServerProcess(["--artifact", str(artifact.path)], log=work / f"start{index}.log"):
            seconds.append(time.perf_counter() - started)
    value = median(seconds)
    report(
        f"start-up to /ready (median of {runs})",
        [("process start -> /ready 200", f"{value:.2f} s")],
        f"{value:.2f} s (target < 2 s: {'met' if value < 2 else 'NOT met'})",
    )


def run_training(artifact: Artifact, *, runs: int = 3) -> None:
    """Training time of the default demo and load time of its artifact."""
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
    training = median(timed(lambda: train(config), runs))
    loading = median(timed(lambda: load_artifact(artifact.path), 20))
    size = sum(p.stat().st_size for p in artifact.path.iterdir()) / 1024
    report(
        "training and loading the default demo",
        [
            (f"train penguins-species (CV + fit, median of {runs})", f"{training:.2f} s"),
            (
                "load_artifact (verify hashes, read inference.json; median of 20)",
                f"{loading * 1000:.1f} ms",
            ),
            ("artifact size", f"{size:.0f} KiB"),
        ],
        "no target: reported for reference",
    )
