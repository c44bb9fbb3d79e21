"""Run the benchmarks: `python -m bench [envsetup] [batch] [latency] [startup] [training]
[trees] [dask]`."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import batch, dask_engine, envsetup, latency, startup, trees
from bench.common import ROOT, machine
from model import TrainConfig, load_artifact, save_result, train

ALL = ("envsetup", "batch", "latency", "startup", "training", "trees", "dask")


def main(names: list[str]) -> int:
    """Run the named benchmarks (all by default) and print their figures."""
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
        return 2
    chosen = names or list(ALL)
    print(f"machine: {machine()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
        artifact = load_artifact(save_result(train(config), work / "artifact"))
        if "envsetup" in chosen:
            envsetup.run(work / "envsetup")
        if "batch" in chosen:
            batch.run(artifact, work)
        if "latency" in chosen:
            latency.run(artifact, work)
        if "startup" in chosen:
            startup.run_startup(artifact, work)
        if "training" in chosen:
            startup.run_training(artifact)
        if "trees" in chosen:
            trees.run(artifact, work)
        if "dask" in chosen:
            dask_engine.run(artifact, work)
    print(f"\nall benchmarks done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
