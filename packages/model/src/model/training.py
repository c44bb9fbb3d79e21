"""Training: validate the data, fit spec preprocessing + estimator as one pipeline, evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from features import (
    CompileError,
    FeatureSpec,
    ValidationReport,
    ValidationResult,
    ValidRows,
    build_preprocessor,
    edge_records,
    validate,
)
from model.compiled import CompiledPipeline
from model.config import TrainConfig
from model.data import fingerprint, read_table
from model.estimators import compile_pipeline
from model.evaluation import labels
from model.exceptions import DataError
from model.metrics import evaluate, scoring
from model.trees import CompiledTrees

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    """A fitted pipeline with everything the manifest records about how it was made."""

    config: TrainConfig
    spec: FeatureSpec
    pipeline: Pipeline
    metrics: dict[str, float]
    cv_metrics: dict[str, dict[str, float]]
    report: ValidationReport
    data_fingerprint: dict[str, str | int]
    n_train: int
    n_test: int
    compiled: CompiledPipeline | None
    inference: str  # how the artifact will predict, and why (for the user)


def _labels(spec: FeatureSpec, valid: ValidRows) -> pd.Series:
    """The target column (:func:`model.evaluation.labels`), indexed like
    :meth:`ValidRows.frame`."""
    return pd.Series(labels(spec, valid), index=pd.Index(valid.rows), name=spec.target.name)


def build_pipeline(spec: FeatureSpec, config: TrainConfig) -> Pipeline:
    """The spec's preprocessing followed by the configured estimator.

    Inside the model the preprocessing hands NumPy arrays on, not DataFrames: the names are not
    needed there, and building a frame per branch cost ~40% of a one-record prediction.
    """
    estimator = config.estimator.build(spec.task, config.seed)
    preprocess = build_preprocessor(spec).set_output(transform="default")
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def train(config: TrainConfig, progress: Progress = lambda _: None) -> TrainResult:
    """Run one training: every step is deterministic given the config, data and lock."""
    spec = config.preflight()
    progress(f"reading {config.data}")
    table = read_table(config.data, spec)
    result = validate(spec, table, target=True, source=str(config.data))
    report = result.report
    share = report.n_invalid / max(report.n_rows, 1)
    if share > config.max_invalid_share:
        msg = (
            f"{config.data}: {report.n_invalid} of {report.n_rows} rows are invalid "
            f"({share:.1%} > max_invalid_share {config.max_invalid_share:.1%}):\n{report.summary()}"
        )
        raise DataError(msg)
    valid = result.valid
    try:
        return _fit(config, spec, result, progress, data=fingerprint(config.data, table.num_rows))
    except ValueError as error:  # scikit-learn on data it cannot learn from: too few rows...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        msg = f"{config.data}: cannot train on its {len(valid)} valid rows: {reason}"
        raise DataError(msg) from None


def _fit(
    config: TrainConfig,
    spec: FeatureSpec,
    result: ValidationResult,
    progress: Progress,
    *,
    data: dict[str, str | int],
) -> TrainResult:
    frame = result.valid.frame()
    X, y = frame[spec.feature_names], _labels(spec, result.valid)
    classification = spec.task == "classification"
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=config.test_size,
        random_state=config.seed,
        stratify=y if classification else None,
    )
    pipeline = build_pipeline(spec, config)
    folds = (StratifiedKFold if classification else KFold)(
        n_splits=config.cv_folds, shuffle=True, random_state=config.seed
    )
    scorers = {metric: get_scorer(name) for metric, name in scoring(spec.task).items()}
    cv: dict[str, list[float]] = {metric: [] for metric in scorers}
    for fold, (fit_rows, score_rows) in enumerate(folds.split(X_train, y_train), start=1):
        progress(f"cross-validation fold {fold} of {config.cv_folds} ({len(fit_rows)} rows)")
        fitted = clone(pipeline).fit(X_train.iloc[fit_rows], y_train.iloc[fit_rows])
        for metric, scorer in scorers.items():
            cv[metric].append(scorer(fitted, X_train.iloc[score_rows], y_train.iloc[score_rows]))
    cv_metrics = {}
    for metric, values in cv.items():
        scores = np.asarray(values, dtype=float)
        scores = -scores if metric in {"rmse", "mae"} else scores
        cv_metrics[metric] = {"mean": float(scores.mean()), "std": float(scores.std())}
    progress(f"fitting on {len(X_train)} rows, evaluating on {len(X_test)}")
    pipeline.fit(X_train, y_train)
    metrics = evaluate(spec.task, y_test, pipeline.predict(X_test))
    progress("compiling the NumPy inference path and checking it against scikit-learn")
    compiled, inference = compile_checked(pipeline, spec, result.valid)
    return TrainResult(
        config=config,
        spec=spec,
        pipeline=pipeline,
        metrics=metrics,
        cv_metrics=cv_metrics,
        report=result.report,
        data_fingerprint=data,
        n_train=len(X_train),
        n_test=len(X_test),
        compiled=compiled,
        inference=inference,
    )


TOLERANCE = 1e-12  # probabilities or values, relative and absolute


def compile_checked(
    pipeline: Pipeline, spec: FeatureSpec, valid: ValidRows
) -> tuple[CompiledPipeline | None, str]:
    """The pipeline's NumPy form, if it has one and, with the estimator it leaves to
    scikit-learn, agrees with the pipeline on the training rows and on
    :func:`features.edge_records` (the same classes, probabilities or values within
    :data:`TOLERANCE`), and a compiled estimator with scikit-learn's on model-matrix rows at,
    just above and just below its split thresholds and with missing values; and a sentence
    saying which way the artifact will predict and why."""
    try:
        compiled = compile_pipeline(pipeline)
    except CompileError as error:
        return None, f"scikit-learn ({error})"
    edges = validate(spec, edge_records(spec), source="edge records").valid
    estimator = compiled.estimator or pipeline[-1]
    worst, checked = 0.0, 0
    for rows in (valid, edges):
        frame = rows.frame()[spec.feature_names]
        matrix = compiled.preprocessor.transform(rows.columns)
        worst = max(worst, _difference(pipeline, estimator, spec, frame, matrix))
        checked += len(rows)
    if isinstance(compiled.estimator, CompiledTrees):
        matrix = compiled.preprocessor.transform(valid.columns)
        for missing in (False, True):
            edge_matrix = split_edges(compiled.estimator, matrix, missing=missing)
            try:
                worst = max(
                    worst, _difference(pipeline[-1], estimator, spec, edge_matrix, edge_matrix)
                )
            except ValueError:  # scikit-learn takes no missing values here: neither will serving
                continue
            checked += len(edge_matrix)
    if worst:
        return None, (
            f"scikit-learn (warning: the NumPy form differed from it by up to {worst:.3g}, "
            "so it was not shipped; please report this)"
        )
    how = (
        "NumPy"
        if compiled.estimator is not None
        else f"NumPy preprocessing + scikit-learn {type(pipeline[-1]).__name__}"
    )
    return compiled, f"{how} (inference.json, checked against scikit-learn on {checked} rows)"


def _difference(
    reference: Any,  # noqa: ANN401 - a scikit-learn pipeline or estimator
    estimator: Any,  # noqa: ANN401 - its compiled (or scikit-learn) estimator
    spec: FeatureSpec,
    reference_input: Any,  # noqa: ANN401 - a frame for a pipeline, else the matrix
    matrix: np.ndarray,
) -> float:
    """0 when ``estimator`` on ``matrix`` predicts what ``reference`` does on its input (the
    same labels, numbers within :data:`TOLERANCE`), else how far apart they are."""
    if spec.task == "classification":
        expected, got = reference.predict_proba(reference_input), estimator.predict_proba(matrix)
        labels = np.asarray(estimator.predict(matrix)).astype(str)
        same = np.array_equal(np.asarray(reference.predict(reference_input)).astype(str), labels)
    else:
        expected, got = reference.predict(reference_input), estimator.predict(matrix)
        same = True
    if same and np.allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE):
        return 0.0
    return max(float(np.max(np.abs(got - expected), initial=0.0)), 1e-300)


def split_edges(
    trees: CompiledTrees, matrix: np.ndarray, *, missing: bool = False, limit: int = 2000
) -> np.ndarray:
    """Model-matrix rows, each a training row with one feature changed, where a compiled tree
    could turn the other way than scikit-learn's: exactly on a split threshold, one step above
    it and one below (up to ``limit`` splits); or, with ``missing``, a missing value."""
    if missing:
        rows = []
        for column in range(matrix.shape[1]):
            edge = np.array(matrix[: min(len(matrix), 20)], order="C")
            edge[:, column] = np.nan
            rows.append(edge)
        return np.concatenate(rows)
    inner = np.flatnonzero(np.isfinite(trees.threshold))
    inner = inner[np.linspace(0, len(inner) - 1, min(limit, len(inner))).astype(int)]
    base = matrix[np.arange(len(inner)) % len(matrix)]
    rows = []
    for shift in (0.0, np.inf, -np.inf):
        edge = np.array(base, order="C")
        at = trees.threshold[inner]
        at = at if shift == 0.0 else np.nextafter(at, shift)
        edge[np.arange(len(inner)), trees.feature[inner]] = at
        rows.append(edge)
    return np.concatenate(rows)
