"""Training: validate the data, fit spec preprocessing + estimator as one pipeline, evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate, train_test_split
from sklearn.pipeline import Pipeline

from features import FeatureSpec, ValidationReport, build_preprocessor, validate_frame
from model.config import TrainConfig
from model.data import fingerprint, read_table
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
    spec = FeatureSpec.from_toml(config.spec)
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
    return TrainResult(
        config=config,
        spec=spec,
        pipeline=pipeline,
        metrics=metrics,
        cv_metrics=cv_metrics,
        report=report,
        data_fingerprint=fingerprint(config.data, len(frame)),
        n_train=len(X_train),
        n_test=len(X_test),
    )


def score_frame(
    pipeline: Pipeline, spec: FeatureSpec, frame: pd.DataFrame
) -> tuple[dict[str, float], ValidationReport]:
    """Metrics of a fitted pipeline on a labelled frame (invalid rows are left out and reported)."""
    result = validate_frame(spec, frame, require_target=True)
    if result.valid.empty:
        msg = f"no valid rows to evaluate:\n{result.report.summary()}"
        raise DataError(msg)
    y = _labels(spec, result.valid)
    predictions = pipeline.predict(result.valid[spec.feature_names])
    return evaluate(spec.task, y, predictions), result.report
