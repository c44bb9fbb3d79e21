"""Compiled tree ensembles against the linear model and against scikit-learn, side by side in
one run: one-record HTTP latency, batch rows/s on the same validated rows, and start-up."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from bench.common import ROOT, median, report, timed
from bench.data import penguins_like
from bench.latency import _load
from features import ValidRows, validate
from model import (
    Artifact,
    HistGradientBoosting,
    RandomForest,
    TrainConfig,
    load_artifact,
    save_result,
    train,
)
from serving.testing import ServerProcess

ESTIMATORS = {  # the configs' defaults: 200 trees, 200 boosting iterations
    "random forest": RandomForest(kind="random_forest"),
    "gradient boosting": HistGradientBoosting(kind="hist_gradient_boosting"),
}


def _http_p50(artifact: Artifact, body: bytes, work: Path, requests: int) -> tuple[float, float]:
    """Sequential one-record p50 over real uvicorn, and the process's start-up to /ready."""
    started = time.perf_counter()
    log = work / f"{artifact.path.name}.log"
    with ServerProcess(["--artifact", str(artifact.path)], log=log) as server:
        ready = time.perf_counter() - started
        _load(server.port, body, 1, 50)  # warm-up
        latencies, errors = _load(server.port, body, 1, requests)
    if errors:
        msg = f"{errors} failed requests against {artifact.path.name}"
        raise RuntimeError(msg)
    return median(latencies), ready


def _batch(artifact: Artifact, valid: ValidRows, frame: pd.DataFrame) -> tuple[float, float]:
    """Median seconds of the compiled prediction and of scikit-learn's own predict_proba."""
    pipeline = artifact.pipeline  # scikit-learn imported before any clock starts
    ours = median(timed(lambda: artifact.predict(valid), 3))
    return ours, median(timed(lambda: pipeline.predict_proba(frame), 3))


def run(linear: Artifact, work: Path, *, rows: int = 200_000, requests: int = 400) -> None:
    """The trees' HTTP p50 minus the linear model's, and their batch rows/s against
    scikit-learn's own predict_proba, on the same validated rows."""
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
    artifacts = {"linear": linear}
    for name, estimator in ESTIMATORS.items():
        result = train(config.model_copy(update={"estimator": estimator}))
        artifacts[name] = load_artifact(save_result(result, work / name.replace(" ", "-")))
    one = pd.read_csv(ROOT / "data" / "penguins.csv").head(1)
    record = json.loads(one[linear.spec.feature_names].to_json(orient="records"))
    body = json.dumps({"records": record}).encode()
    valid = validate(linear.spec, penguins_like(rows, seed=3)).valid
    frame = valid.frame()[linear.spec.feature_names]

    http, table, verdicts = {}, [], []
    for name, artifact in artifacts.items():
        http[name] = _http_p50(artifact, body, work, requests)
        table.append(
            (f"{name}: HTTP one record p50 / start-up to /ready", f"{http[name][0] * 1000:.2f} ms"
             f" / {http[name][1]:.2f} s")
        )  # fmt: skip
    for name in ESTIMATORS:
        ours, theirs = _batch(artifacts[name], valid, frame)
        gap = (http[name][0] - http["linear"][0]) * 1000
        table.append(
            (f"{name}: batch {len(valid):,} rows, NumPy / scikit-learn predict_proba",
             f"{len(valid) / ours:,.0f} / {len(valid) / theirs:,.0f} rows/s")
        )  # fmt: skip
        verdicts.append(
            f"{name}: HTTP p50 {gap:+.2f} ms vs linear (target <= +0.5: "
            f"{'met' if gap <= 0.5 else 'NOT met'}), batch {theirs / ours:.1f}x scikit-learn "
            f"(target >= 2: {'met' if theirs / ours >= 2 else 'NOT met'}), ready in "
            f"{http[name][1]:.2f} s (target < 1: {'met' if http[name][1] < 1 else 'NOT met'})"
        )
    report("compiled trees against linear and scikit-learn", table, "; ".join(verdicts))
