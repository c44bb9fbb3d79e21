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
    build_preprocessor,
    frame_columns,
    validate_frame,
)
from model.artifact import Artifact
from model.compiled import CompiledPipeline
from model.config import TrainConfig
from model.data import fingerprint, read_table
from model.estimators import compile_pipeline
from model.exceptions import DataError
from model.metrics import evaluate, scoring

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


def _labels(spec: FeatureSpec, valid: pd.DataFrame) -> pd.Series:
    """The target column: class names as strings for classification, numbers otherwise."""
    y = valid[spec.target.name]
    return y.astype(str) if spec.task == "classification" else y


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
    frame = read_table(config.data)
    result = validate_frame(spec, frame, require_target=True)
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
        return _fit(config, spec, result, progress, data=fingerprint(config.data, len(frame)))
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
    valid = result.valid
    X, y = valid[spec.feature_names], _labels(spec, valid)
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
    compiled, inference = compile_checked(pipeline, spec, X)
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


def edge_rows(spec: FeatureSpec, X: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``X`` with, in turn, each nullable feature null and each open category unseen."""
    base = X.head(1)
    rows = []
    for column in spec.features:
        if column.nullable:
            rows.append(base.assign(**{column.name: np.nan}))
        if column.kind == "categorical" and column.allow_unknown:
            rows.append(base.assign(**{column.name: "\x00unseen"}))
    if rows:
        rows.append(base.assign(**{c.name: np.nan for c in spec.features if c.nullable}))
    return pd.concat([base, *rows], ignore_index=True).astype(X.dtypes.to_dict())


def compile_checked(
    pipeline: Pipeline, spec: FeatureSpec, X: pd.DataFrame
) -> tuple[CompiledPipeline | None, str]:
    """The pipeline's NumPy form, if it has one and, with the estimator it leaves to
    scikit-learn, agrees with the pipeline on ``X`` and on :func:`edge_rows` (probabilities or
    values within 1e-9, relative, and the same classes); and a sentence saying which way the
    artifact will predict and why."""
    try:
        compiled = compile_pipeline(pipeline)
    except CompileError as error:
        return None, f"scikit-learn ({error})"
    rows = pd.concat([X, edge_rows(spec, X)], ignore_index=True)
    matrix = compiled.preprocessor.transform(frame_columns(rows, spec.feature_names))
    estimator = compiled.estimator or pipeline[-1]
    if spec.task == "classification":
        expected, got = pipeline.predict_proba(rows), estimator.predict_proba(matrix)
        labels = np.asarray(estimator.predict(matrix)).astype(str)
        same = np.array_equal(pipeline.predict(rows).astype(str), labels)
    else:
        expected, got = pipeline.predict(rows), estimator.predict(matrix)
        same = True
    if not (same and np.allclose(got, expected, rtol=1e-9, atol=1e-12)):
        difference = float(np.max(np.abs(got - expected)))
        return None, (
            f"scikit-learn (warning: the NumPy form differed from it by up to {difference:.3g}, "
            "so it was not shipped; please report this)"
        )
    how = (
        "NumPy"
        if compiled.estimator is not None
        else f"NumPy preprocessing + scikit-learn {type(pipeline[-1]).__name__}"
    )
    return compiled, f"{how} (inference.json, checked against scikit-learn on {len(rows)} rows)"


def evaluate_artifact(
    artifact: Artifact, frame: pd.DataFrame
) -> tuple[dict[str, float], ValidationReport]:
    """Metrics of an artifact on a labelled frame, predicted as serving predicts (the compiled
    form when the artifact has one); invalid rows are left out and reported."""
    spec = artifact.spec
    result = validate_frame(spec, frame, require_target=True)
    if result.valid.empty:
        msg = f"no valid rows to evaluate:\n{result.report.summary()}"
        raise DataError(msg)
    labels, _ = artifact.predict_valid(frame_columns(result.valid, spec.feature_names))
    return evaluate(spec.task, _labels(spec, result.valid), labels), result.report
