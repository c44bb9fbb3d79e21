"""A fitted linear pipeline as plain NumPy: the fast inference path that needs no scikit-learn.

Training compiles the pipeline (:func:`model.estimators.compile_pipeline`) and checks the
result against scikit-learn on the training rows and edge cases before it ships it as
``inference.json`` beside the skops file. Loading it imports NumPy only, so a serving process
starts without scikit-learn and SciPy, and one record is predicted in microseconds. Models
without a compiled form (trees) keep using the skops pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from features.compiled import Columns, CompiledPreprocessor

Kind = Literal["logistic", "linear"]


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed the way scikit-learn does."""
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


@dataclass(frozen=True)
class CompiledPipeline:
    """Preprocessing plus a linear model: logistic (class probabilities) or linear (values)."""

    preprocessor: CompiledPreprocessor
    kind: Kind
    coef: np.ndarray  # (n_classes or 1, n_features)
    intercept: np.ndarray  # (n_classes or 1,)
    classes: np.ndarray  # class labels for "logistic", empty for "linear"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompiledPipeline:
        """Build from plain data (``inference.json``)."""
        kind = raw["kind"]
        if kind not in {"logistic", "linear"}:
            msg = f"unknown compiled estimator kind {kind!r}"
            raise ValueError(msg)
        classes = raw.get("classes") or []
        if (kind == "logistic") != bool(classes):
            msg = "a compiled logistic model needs its classes, a linear one has none"
            raise ValueError(msg)
        return cls(
            CompiledPreprocessor.from_dict(raw["preprocessor"]),
            kind,
            np.atleast_2d(np.asarray(raw["coef"], dtype=np.float64)),
            np.atleast_1d(np.asarray(raw["intercept"], dtype=np.float64)),
            np.asarray(classes, dtype=object),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; floats round-trip exactly."""
        return {
            "kind": self.kind,
            "preprocessor": self.preprocessor.to_dict(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "classes": self.classes.tolist(),
        }

    def _scores(self, columns: Columns) -> np.ndarray:
        scores: np.ndarray = self.preprocessor.transform(columns) @ self.coef.T + self.intercept
        return scores

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Class probabilities, columns ordered like :attr:`classes`."""
        if self.kind != "logistic":
            msg = "predict_proba needs a classifier"
            raise TypeError(msg)
        scores = self._scores(columns)
        if scores.shape[1] > 1:
            return _softmax(scores)
        positive = np.exp(-np.logaddexp(0.0, -scores[:, 0]))  # the logistic, without overflow
        return np.column_stack([1.0 - positive, positive])

    def predict(self, columns: Columns) -> np.ndarray:
        """Predicted values (regression) or class labels (the most probable class)."""
        if self.kind == "linear":
            return self._scores(columns)[:, 0]
        return np.asarray(self.classes[self.predict_proba(columns).argmax(axis=1)])
