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
HINT = " (a value far outside the data it was trained on?)"


@dataclass(frozen=True)
class Prediction:
    """Predictions for validated rows: ``labels`` (class names, or values for regression),
    ``probabilities`` (rows by :attr:`Artifact.classes`, classifiers only) and ``rows``, the
    rows' positions in the input. Only finite numbers are predicted: a row whose value or
    probabilities are not (an overflow, NaN) is left out of those three and listed in
    ``refused`` (positions in the input), for the reason ``reason``; a caller refuses those
    rows as it refuses invalid ones."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    rows: np.ndarray
    refused: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reason: str = ""


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
            proba = np.zeros((0, len(classes))) if len(classes) else None
            return Prediction(classes[:0] if len(classes) else np.zeros(0), proba, valid.rows)
        estimator: Any = (
            self.pipeline[-1]
            if self.compiled is None or self.compiled.estimator is None
            else self.compiled.estimator
        )
        # An overflow (a huge value through a linear model) is not a warning: its rows are
        # refused below, where the outputs are checked.
        with np.errstate(all="ignore"):
            matrix = self._matrix(valid.columns)
            if self.spec.task != "classification":
                values = np.asarray(estimator.predict(matrix), dtype=np.float64)
                return _finite(values, None, valid.rows)
            # One pass through the model: the predicted class is the most probable one.
            proba = np.asarray(estimator.predict_proba(matrix), dtype=np.float64)
            return _finite(classes[proba.argmax(axis=1)], proba, valid.rows)

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


def _finite(labels: np.ndarray, proba: np.ndarray | None, rows: np.ndarray) -> Prediction:
    """The prediction of the rows whose outputs (values, or every class probability) are
    finite; the others refused (see :class:`Prediction`). One ``np.isfinite`` when all are."""
    finite = np.isfinite(labels if proba is None else proba)
    if finite.all():
        return Prediction(labels, proba, rows)
    keep = finite if proba is None else finite.all(axis=1)
    reason = (NOT_FINITE_VALUE if proba is None else NOT_FINITE_PROBABILITIES) + HINT
    kept = None if proba is None else proba[keep]
    return Prediction(labels[keep], kept, rows[keep], rows[~keep], reason)


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
