"""The compiled tree kernel (model[fast]) in one run: whole-process `serving score` of a Parquet
file to Parquet on one core against the usual pandas + scikit-learn script, for a random
forest and histogram gradient boosting; the kernel alone against scikit-learn's own
predict_proba on the same model matrix at 1 and 2 threads; and its first-call cost (numba's
import, and compiling into an empty cache or loading from a warm one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from bench.common import ROOT, median, report, timed
from bench.data import penguins_like, write_parquet
from features import validate
from model import (
    Artifact,
    HistGradientBoosting,
    RandomForest,
    TrainConfig,
    load_artifact,
    save_result,
    train,
)

ESTIMATORS = {  # the configs' defaults: 200 trees, 200 boosting iterations (600 trees)
    "random forest": (RandomForest(kind="random_forest"), 1.3),
    "gradient boosting": (HistGradientBoosting(kind="hist_gradient_boosting"), 2.0),
}

# What a user scoring a table with the skops file alone would write: read, predict, write.
SCRIPT = """
import sys

import pandas as pd
import skops.io as sio

source, artifact, output = sys.argv[1:]
path = f"{artifact}/pipeline.skops"
pipeline = sio.load(path, trusted=sio.get_untrusted_types(file=path))
frame = pd.read_parquet(source)
proba = pipeline.predict_proba(frame)
classes = pipeline.classes_
scores = pd.DataFrame(proba, columns=[f"probability_{c}" for c in classes])
scores.insert(0, "prediction", classes[proba.argmax(axis=1)])
scores.to_parquet(output, index=False)
"""

FIRST_CALL_ROWS = 60_000  # x 200 trees or more: above the rows x trees the kernel starts at
# The kernel's first call in a fresh process: numba's import, then compiling (or loading from
# the cache) the serial variant for this model, measured as first call minus second.
FIRST_CALL = """
import sys
import time

from features import validate
from model import load_artifact
from bench.data import penguins_like

artifact = load_artifact(sys.argv[1])
valid = validate(artifact.spec, penguins_like(int(sys.argv[2]), seed=5)).valid
started = time.perf_counter()
artifact.predict(valid)
first = time.perf_counter() - started
started = time.perf_counter()
artifact.predict(valid)
print(first - (time.perf_counter() - started))
"""


def _one_core() -> tuple[list[str], str]:
    """``taskset -c 0`` where there is one, and how the figures were taken."""
    if shutil.which("taskset"):
        return ["taskset", "-c", "0"], "one core (taskset -c 0)"
    return [], "every core (no taskset here)"


def _seconds(command: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall seconds of ``command`` as a whole process, after one untimed run (the file
    in the page cache, numba's cache filled)."""

    def run() -> None:
        subprocess.run(command, check=True, capture_output=True, env=env)

    run()
    return median(timed(run, runs))


def _same_labels(ours: Path, theirs: Path) -> tuple[bool, int]:
    """Whether `serving score`'s predictions equal the script's on every row it scored (the
    others it rejected, with reasons), and how many it scored."""
    scored = pq.read_table(ours, columns=["row", "prediction"]).to_pydict()
    script = np.asarray(pq.read_table(theirs, columns=["prediction"]).column(0).to_pylist())
    rows = np.asarray(scored["row"])
    return bool((script[rows] == np.asarray(scored["prediction"])).all()), len(rows)


def _first_call(artifact: Artifact, rows: int, cache: Path) -> float:
    """Seconds numba's import and the kernel's compilation (or cache load) add to the first
    large prediction of a fresh process whose numba cache is ``cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_CALL, str(artifact.path), str(rows)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return float(done.stdout.split()[-1])


def _kernel_alone(artifact: Artifact, rows: int, runs: int) -> dict[int, tuple[float, float]]:
    """Median seconds of the compiled trees' predict_proba (the kernel, as artifacts predict)
    and of scikit-learn's estimator's, on the same model matrix, at 1 and 2 threads."""
    compiled = artifact.compiled
    assert compiled is not None
    assert compiled.estimator is not None
    trees = compiled.estimator
    valid = validate(artifact.spec, penguins_like(rows, seed=4)).valid
    matrix = compiled.preprocessor.transform(valid.columns)
    estimator: Any = artifact.pipeline[-1]  # scikit-learn imported before any clock starts
    trees.predict_proba(matrix)  # numba imported and the kernel loaded
    if "model.tree_kernel" not in sys.modules:
        msg = f"{rows:,} rows: too few for the kernel, or numba is not installed (model[fast])"
        raise RuntimeError(msg)
    before = os.environ.get("OMP_NUM_THREADS")
    seconds = {}
    try:
        for threads in (1, 2):
            os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel's threads, as OpenMP's
            ours = median(timed(lambda: trees.predict_proba(matrix), runs))
            if "n_jobs" in estimator.get_params():
                estimator.set_params(n_jobs=threads)  # a forest's trees on joblib's threads
            with threadpool_limits(threads):  # boosting's OpenMP loops
                theirs = median(timed(lambda: estimator.predict_proba(matrix), runs))
            seconds[threads] = ours, theirs
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before
    return seconds


def run(work: Path, *, rows: int = 1_000_000, runs: int = 3) -> None:
    """Every figure of the kernel, for each estimator, with its target."""
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
    source = write_parquet(work / "kernel.parquet", rows, seed=7)
    script = work / "sklearn_script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    pin, where = _one_core()
    table, verdicts = [], []
    for name, (estimator, target) in ESTIMATORS.items():
        result = train(config.model_copy(update={"estimator": estimator}))
        artifact = load_artifact(save_result(result, work / f"kernel-{name.replace(' ', '-')}"))
        cold = _first_call(artifact, FIRST_CALL_ROWS, work / f"numba-{artifact.path.name}")
        warm = _first_call(artifact, FIRST_CALL_ROWS, work / f"numba-{artifact.path.name}")
        ours_out, theirs_out = work / "ours.parquet", work / "theirs.parquet"
        score = [sys.executable, "-m", "serving.cli", "score", "--artifact", str(artifact.path)]
        ours = _seconds([*pin, *score, str(source), str(ours_out)], runs)
        theirs = _seconds(
            [*pin, sys.executable, str(script), str(source), str(artifact.path), str(theirs_out)],
            runs,
        )
        same, scored = _same_labels(ours_out, theirs_out)
        alone = _kernel_alone(artifact, rows, runs)
        ratio = theirs / ours
        table += [
            (
                f"{name}: whole process, {rows:,} rows Parquet->Parquet, {where}",
                f"serving score {ours:.2f} s, pandas + scikit-learn script {theirs:.2f} s "
                f"({ratio:.2f}x); labels {'equal' if same else 'DIFFER'} on the {scored:,} "
                "rows scored",
            ),
            *(
                (
                    f"{name}: predict_proba on the model matrix, {threads} thread(s)",
                    f"kernel {rows / k:,.0f} rows/s, scikit-learn {rows / s:,.0f} rows/s "
                    f"({s / k:.2f}x)",
                )
                for threads, (k, s) in alone.items()
            ),
            (
                f"{name}: first large call (numba import + kernel)",
                f"{cold:.2f} s compiling into an empty cache, {warm:.2f} s from a warm one",
            ),
        ]
        verdicts.append(
            f"{name} {ratio:.2f}x the script (target >= {target}: "
            f"{'met' if ratio >= target and same else 'NOT met'})"
        )
    report("compiled tree kernel (model[fast]) against scikit-learn", table, "; ".join(verdicts))


if __name__ == "__main__":  # python -m bench.tree_kernel [rows]
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        started = time.perf_counter()
        run(Path(tmp), rows=int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
        print(f"done in {time.perf_counter() - started:.0f} s")
