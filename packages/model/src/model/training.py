"""Training: validate the data, fit spec preprocessing + estimator as one pipeline, evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate, train_test_split
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
from model.exceptions import DataError
from model.metrics import evaluate, scoring
from model.predictor import Artifact

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
    """The target column, indexed like :meth:`ValidRows.frame`: class names (text, as the
    target's kind names them) for classification, numbers otherwise."""
    y = valid.columns[spec.target.name]
    if spec.task == "classification":
        y = spec.target.class_names(y)
    return pd.Series(y, index=pd.Index(valid.rows), name=spec.target.name)


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
    progress(f"cross-validating on {len(X_train)} rows ({config.cv_folds} folds)")
    cv = cross_validate(pipeline, X_train, y_train, cv=folds, scoring=scoring(spec.task))
    cv_metrics = {}
    for metric in scoring(spec.task):
        scores = np.asarray(cv[f"test_{metric}"], dtype=float)
        scores = -scores if metric in {"rmse", "mae"} else scores
        cv_metrics[metric] = {"mean": float(scores.mean()), "std": float(scores.std())}
    progress(f"fitting on {len(X_train)} rows, evaluating on {len(X_test)}")
    pipeline.fit(X_train, y_train)
    metrics = evaluate(spec.task, y_test, pipeline.predict(X_test))
    progress("compiling the NumPy inference path")
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


def compile_checked(
    pipeline: Pipeline, spec: FeatureSpec, valid: ValidRows
) -> tuple[CompiledPipeline | None, str]:
    """The pipeline's NumPy form, if it has one and, with the estimator it leaves to
    scikit-learn, agrees with the pipeline on the training rows and on
    :func:`features.edge_records` (probabilities or values within 1e-9, relative, and the same
    classes); and a sentence saying which way the artifact will predict and why."""
    try:
        compiled = compile_pipeline(pipeline)
    except CompileError as error:
        return None, f"scikit-learn ({error})"
    edges = validate(spec, edge_records(spec), source="edge records").valid
    worst, checked = 0.0, 0
    for rows in (valid, edges):
        frame = rows.frame()[spec.feature_names]
        matrix = compiled.preprocessor.transform(rows.columns)
        estimator = compiled.estimator or pipeline[-1]
        if spec.task == "classification":
            expected, got = pipeline.predict_proba(frame), estimator.predict_proba(matrix)
            labels = np.asarray(estimator.predict(matrix)).astype(str)
            same = np.array_equal(pipeline.predict(frame).astype(str), labels)
        else:
            expected, got = pipeline.predict(frame), estimator.predict(matrix)
            same = True
        checked += len(rows)
        if not (same and np.allclose(got, expected, rtol=1e-9, atol=1e-12)):
            worst = max(worst, float(np.max(np.abs(got - expected))), 1e-300)
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


def evaluate_artifact(
    artifact: Artifact, data: object
) -> tuple[dict[str, float], ValidationReport]:
    """Metrics of an artifact on labelled data (records, an Arrow table as
    :func:`features.read_table` reads a file, or a frame), validated by the spec and predicted
    as serving predicts (the compiled form when the artifact has one); invalid rows are left
    out and reported."""
    spec = artifact.spec
    result = validate(spec, data, target=True)
    if not len(result.valid):
        msg = f"no valid rows to evaluate:\n{result.report.summary()}"
        raise DataError(msg)
    predicted = artifact.predict(result.valid)
    return evaluate(spec.task, _labels(spec, result.valid), predicted.labels), result.report
