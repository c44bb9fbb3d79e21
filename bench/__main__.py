"""Run the benchmarks: `python -m bench [envsetup] [batch] [latency] [startup] [training]
[trees] [dask] [kernel] [--rows N]` (``--rows``: the kernel benchmark's rows, 1M by default)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench import batch, dask_engine, envsetup, latency, startup, tree_kernel, trees
from bench.common import ROOT, machine
from model import TrainConfig, load_artifact, save_result, train

ALL = ("envsetup", "batch", "latency", "startup", "training", "trees", "dask", "kernel")


def main(names: list[str]) -> int:
    """Run the named benchmarks (all by default) and print their figures."""
    rows = 1_000_000
    if "--rows" in names:
        at = names.index("--rows")
        if at + 1 >= len(names) or not names[at + 1].isdigit():
            print("--rows takes a number of rows")
            return 2
        rows = int(names[at + 1])
        names = names[:at] + names[at + 2 :]
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
        if "kernel" in chosen:
            tree_kernel.run(work, rows=rows)
    print(f"\nall benchmarks done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
