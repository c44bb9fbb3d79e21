"""A loaded artifact and its predictions.

An :class:`Artifact` comes from :func:`model.load_artifact`, which has read each of its files
once, verified those bytes and audited its skops file (:mod:`model.audit`) before building
it from them. It predicts with the compiled form where the artifact has one
(:mod:`model.compiled`: NumPy only for linear and tree models), else with the scikit-learn
pipeline, loaded on first use from the skops bytes that were verified (never read again from
disk), after skops' own type audit (a second check against
:data:`model.audit.TRUSTED_TYPES`). Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features import Categories, Columns, FeatureSpec, ValidRows
from model.audit import TRUSTED_TYPES, check_skops_header
from model.compiled import CompiledPipeline
from model.exceptions import ArtifactError
from model.manifest import PIPELINE_FILE, Manifest

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


NOT_FINITE_VALUE = "the model's prediction is not a finite number"
NOT_FINITE_PROBABILITIES = "the model's class probabilities are not finite numbers"
OUT_OF_RANGE = "a feature's value is beyond the range the model's estimator takes"
HINT = " (a value far outside the data it was trained on?)"


@dataclass(frozen=True)
class Prediction:
    """Predictions for validated rows: ``labels`` (class names, or values for regression),
    ``probabilities`` (rows by :attr:`Artifact.classes`, classifiers only) and ``rows``, the
    rows' positions in the input. Only finite numbers are predicted: a row whose value or
    probabilities are not (an overflow, NaN), or, on the scikit-learn path, whose model matrix
    holds a value the estimator does not take (see :func:`beyond_estimator`), is left out of
    those three and listed in ``refused`` (positions in the input, ascending), each with its
    reason in ``reasons``; a caller refuses those rows as it refuses invalid ones."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    rows: np.ndarray
    refused: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reasons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    """Why each row of ``refused`` is refused, in the same order."""

    @property
    def reason(self) -> str:
        """Why rows are refused: the distinct :attr:`reasons`, joined by ``"; "``."""
        return "; ".join(dict.fromkeys(self.reasons.tolist()))


@dataclass(frozen=True)
class Artifact:
    """A verified, audited, loaded model: ``path`` is the folder it was read from (a link
    given to :func:`model.load_artifact` resolved), ``digest`` the sha256 of the
    ``manifest.json`` it was built from (which holds the sha256 of every other file), and
    ``skops`` the verified bytes of its skops file."""

    path: Path
    manifest: Manifest
    spec: FeatureSpec
    compiled: CompiledPipeline | None
    digest: str
    skops: bytes = field(repr=False)

    @property
    def name(self) -> str:
        """The model's name (the training config's ``name``)."""
        return self.manifest.model_name

    @property
    def version(self) -> str:
        """``<model package version>+<12 hex>``, identifying what predicts: the compiled form,
        class order, spec, config and data fingerprint (see
        :func:`model.manifest.model_version`); recomputed and checked when loaded."""
        return self.manifest.model_version

    @cached_property
    def pipeline(self) -> Pipeline:
        """The scikit-learn pipeline, loaded on first use from the verified skops bytes (skops
        audits them again)."""
        return load_pipeline(self.skops, self.path / PIPELINE_FILE)

    def predict(self, valid: ValidRows) -> Prediction:
        """Predict rows that passed the spec: only :func:`features.validate` makes
        :class:`features.ValidRows`, so nothing unvalidated reaches the model. The compiled
        preprocessing and estimator are used where the artifact has them, else the
        scikit-learn pipeline's."""
        if not isinstance(valid, ValidRows):
            msg = "predict takes features.ValidRows (made by features.validate), "  # type: ignore[unreachable]
            msg += f"not {type(valid).__name__}"
            raise TypeError(msg)
        if valid.spec_name != self.spec.name:
            msg = f"rows validated by the spec {valid.spec_name!r}, not by {self.spec.name!r}"
            raise ValueError(msg)
        classes = np.asarray(self.classes, dtype=object)
        if not len(valid):
            return _outputs(None, np.zeros((0, 0)), valid.rows, classes)
        estimator: Any = self.compiled.estimator if self.numpy_only else self.pipeline[-1]  # type: ignore[union-attr]
        # An overflow (a huge value through a linear model) is not a warning: its rows are
        # refused where the outputs are checked.
        with np.errstate(all="ignore"):
            matrix = self._matrix(valid.columns)
            if self.numpy_only:  # compiled estimators take any number
                return _outputs(estimator, matrix, valid.rows, classes)
            # scikit-learn refuses a whole batch for one value it does not take: refuse its row.
            beyond = beyond_estimator(matrix, estimator)
            if not beyond.any():
                return _outputs(estimator, matrix, valid.rows, classes)
            kept = _outputs(estimator, matrix[~beyond], valid.rows[~beyond], classes)
        return _merged(kept, valid.rows[beyond], OUT_OF_RANGE + HINT)

    def _matrix(self, columns: Columns) -> np.ndarray:
        """The model matrix: what the pipeline's preprocessing hands its estimator."""
        if self.compiled is not None:
            return self.compiled.preprocessor.transform(columns)
        import pandas as pd  # noqa: PLC0415 - only the scikit-learn path needs a frame

        names = self.spec.feature_names
        frame = pd.DataFrame(
            {
                name: pd.Series(
                    columns[name].to_numpy()
                    if isinstance(columns[name], Categories)
                    else columns[name],
                    dtype=object if isinstance(columns[name], Categories) else "float64",
                )
                for name in names
            }
        )
        return np.asarray(self.pipeline[:-1].transform(frame))

    @property
    def numpy_only(self) -> bool:
        """Whether it predicts with NumPy alone (a compiled estimator): microseconds a record,
        no scikit-learn."""
        return self.compiled is not None and self.compiled.estimator is not None

    @property
    def classes(self) -> list[str]:
        """Class names in probability-column order (empty for regression)."""
        return list(self.manifest.classes or [])


def beyond_estimator(matrix: np.ndarray, estimator: object) -> np.ndarray:
    """Which rows of a model matrix ``estimator`` (a scikit-learn one) does not take, whose
    input check would refuse the whole batch: an infinity (a huge value once standardised), and
    for a decision tree or random forest, which compare in float32, a value beyond float32's
    range. Histogram gradient boosting takes any number. NaN is a missing value, the
    estimator's to take (trees do; the preprocessing fills it for linear models)."""
    from sklearn.ensemble import (  # noqa: PLC0415 - only the scikit-learn path comes here
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import BaseDecisionTree  # noqa: PLC0415

    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return np.zeros(len(matrix), dtype=bool)
    forest = RandomForestClassifier | RandomForestRegressor | BaseDecisionTree
    with np.errstate(over="ignore"):
        compared = matrix.astype(np.float32) if isinstance(estimator, forest) else matrix
    return np.asarray(np.isinf(compared).any(axis=1))


def _merged(predicted: Prediction, refused: np.ndarray, reason: str) -> Prediction:
    """``predicted`` with the rows ``refused`` for ``reason`` added to its own refused rows,
    all in input order."""
    rows = np.concatenate([predicted.refused, refused])
    reasons = np.concatenate([predicted.reasons, np.full(len(refused), reason, dtype=object)])
    order = np.argsort(rows, kind="stable")
    return dataclasses.replace(predicted, refused=rows[order], reasons=reasons[order])


def _outputs(
    estimator: Any,  # noqa: ANN401 - a compiled or a scikit-learn estimator
    matrix: np.ndarray,
    rows: np.ndarray,
    classes: np.ndarray,
) -> Prediction:
    """The estimator's prediction of the model matrix of ``rows``, classes by the most probable
    one (one pass through the model), rows without finite outputs refused (see
    :func:`_finite`); nothing asked of the estimator when there are no rows."""
    if not len(rows):
        proba = np.zeros((0, len(classes))) if len(classes) else None
        return Prediction(classes[:0] if len(classes) else np.zeros(0), proba, rows)
    if not len(classes):
        return _finite(np.asarray(estimator.predict(matrix), dtype=np.float64), None, rows)
    proba = np.asarray(estimator.predict_proba(matrix), dtype=np.float64)
    return _finite(classes[proba.argmax(axis=1)], proba, rows)


def _finite(labels: np.ndarray, proba: np.ndarray | None, rows: np.ndarray) -> Prediction:
    """The prediction of the rows whose outputs (values, or every class probability) are
    finite; the others refused (see :class:`Prediction`). One ``np.isfinite`` when all are."""
    finite = np.isfinite(labels if proba is None else proba)
    if finite.all():
        return Prediction(labels, proba, rows)
    keep = finite if proba is None else finite.all(axis=1)
    reason = (NOT_FINITE_VALUE if proba is None else NOT_FINITE_PROBABILITIES) + HINT
    kept = None if proba is None else proba[keep]
    refused = rows[~keep]
    reasons = np.full(len(refused), reason, dtype=object)
    return Prediction(labels[keep], kept, rows[keep], refused, reasons)


def load_pipeline(data: bytes, file: Path) -> Pipeline:
    """The scikit-learn pipeline in ``data``, the bytes of the skops file ``file`` (named in
    messages), refused with :class:`ArtifactError` unless skops' own audit finds only its safe
    types and :data:`~model.audit.TRUSTED_TYPES` (the second check: :func:`model.load_artifact`
    has audited the same bytes already, see :mod:`model.audit`)."""
    import skops.io as sio  # noqa: PLC0415 - scikit-learn is imported only when needed
    from sklearn.pipeline import Pipeline  # noqa: PLC0415

    check_skops_header(data, file)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as error:
        msg = f"{file}: unreadable skops file: {error}"
        raise ArtifactError(msg) from None
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        msg = f"{file}: holds types outside the trusted list: {', '.join(unknown)}"
        raise ArtifactError(msg)
    pipeline = sio.loads(data, trusted=list(TRUSTED_TYPES))
    if not isinstance(pipeline, Pipeline):
        msg = f"{file}: holds a {type(pipeline).__name__}, expected a scikit-learn Pipeline"
        raise ArtifactError(msg)
    return pipeline
