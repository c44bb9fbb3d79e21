"""A fitted pipeline as plain NumPy: the fast inference path.

Training compiles the pipeline (:func:`model.estimators.compile_pipeline`) and checks the
result against scikit-learn on the training rows and edge cases before it ships it as
``inference.json`` beside the skops file. The preprocessing always compiles; so do linear
estimators (logistic or ridge regression) and tree ensembles (random forests, histogram
gradient boosting: :mod:`model.trees`), and then predicting needs NumPy only: a serving
process starts without scikit-learn and SciPy, and one record takes microseconds. For an
estimator that does not compile, the compiled preprocessing feeds scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from features import CompiledPreprocessor, FeatureSpec, json_numbers, json_texts
from model.trees import CompiledTrees

Kind = Literal["logistic", "linear"]


@contextmanager
def _within(name: str) -> Iterator[None]:
    """A ``ValueError`` raised inside names its field from the top of the file."""
    try:
        yield
    except ValueError as error:
        msg = f"{name}.{error}"
        raise ValueError(msg) from None


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed the way scikit-learn does."""
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


@dataclass(frozen=True)
class CompiledLinear:
    """A fitted linear model on the model matrix, with scikit-learn's ``predict`` and
    ``predict_proba``: logistic (class probabilities) or linear (values)."""

    kind: Kind
    coef: np.ndarray  # (n_classes or 1, n_features)
    intercept: np.ndarray  # (n_classes or 1,)
    classes: np.ndarray  # class labels for "logistic", empty for "linear"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompiledLinear:
        """Build from plain data, refusing with a ``ValueError`` naming the field anything but
        finite numbers in the shapes the kind and the classes give: one row of coefficients
        and one intercept per class (one in all for two classes, or for a linear model)."""
        kind = raw["kind"]
        if kind not in {"logistic", "linear"}:
            msg = f"kind: unknown compiled estimator kind {kind!r}"
            raise ValueError(msg)
        classes = json_texts(raw.get("classes") or [], "classes")
        if (kind == "logistic") != (len(classes) >= 2):
            msg = "classes: a logistic model needs two or more, a linear one none"
            raise ValueError(msg)
        coef = json_numbers(raw["coef"], "coef", ndim=2)
        intercept = json_numbers(raw["intercept"], "intercept", ndim=1)
        rows = len(classes) if len(classes) > 2 else 1  # two classes: one row
        if coef.shape[0] != rows or len(intercept) != rows or not coef.shape[1]:
            msg = (
                f"coef: {coef.shape[0]} row(s) of {coef.shape[1]} and {len(intercept)} "
                f"intercept(s), where {rows} of each belong ({len(classes)} classes)"
            )
            raise ValueError(msg)
        return cls(kind, coef, intercept, np.asarray(classes, dtype=object))

    @property
    def n_features(self) -> int:
        """Width of the model matrix it takes."""
        return int(self.coef.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; floats round-trip exactly."""
        return {
            "kind": self.kind,
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "classes": self.classes.tolist(),
        }

    def _scores(self, X: np.ndarray) -> np.ndarray:
        """``X @ coef.T + intercept``, summed feature by feature in a fixed order, so that a
        row's score never depends on the other rows of its batch (a matrix product picks
        its kernel, and so its rounding, by the batch's shape)."""
        scores = np.repeat(self.intercept[None, :], len(X), axis=0)
        for column, weights in zip(X.T, self.coef.T, strict=True):
            scores += column[:, None] * weights
        return scores

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, columns ordered like :attr:`classes`."""
        if self.kind != "logistic":
            msg = "predict_proba needs a classifier"
            raise TypeError(msg)
        scores = self._scores(X)
        if scores.shape[1] > 1:
            return _softmax(scores)
        positive = np.exp(-np.logaddexp(0.0, -scores[:, 0]))  # the logistic, without overflow
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values (regression) or class labels (the most probable class)."""
        if self.kind == "linear":
            return self._scores(X)[:, 0]
        return np.asarray(self.classes[self.predict_proba(X).argmax(axis=1)])


@dataclass(frozen=True)
class CompiledPipeline:
    """The compiled preprocessing, and the compiled estimator when there is one (else the
    artifact's scikit-learn estimator takes the model matrix)."""

    preprocessor: CompiledPreprocessor
    estimator: CompiledLinear | CompiledTrees | None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompiledPipeline:
        """Build from plain data (``inference.json``), every number checked: a ``ValueError``
        names the first field that is not what training writes (see
        :meth:`CompiledLinear.from_dict`, :meth:`model.trees.CompiledTrees.from_dict`)."""
        with _within("preprocessor"):
            preprocessor = CompiledPreprocessor.from_dict(raw["preprocessor"])
        estimator = raw["estimator"]
        if estimator is None:
            return cls(preprocessor, None)
        trees = estimator.get("kind") in {"forest", "boosting"}
        with _within("estimator"):
            compiled = (CompiledTrees if trees else CompiledLinear).from_dict(estimator)
        if compiled.n_features != preprocessor.n_features_out:
            msg = f"estimator: takes {compiled.n_features} features, the preprocessing "
            msg += f"makes {preprocessor.n_features_out}"
            raise ValueError(msg)
        return cls(preprocessor, compiled)

    def check_inputs(self, spec: FeatureSpec) -> None:
        """Refuse, with a ``ValueError`` naming the branch, preprocessing that reads what
        ``spec`` does not validate (:meth:`features.CompiledPreprocessor.check_inputs`)."""
        with _within("preprocessor"):
            self.preprocessor.check_inputs(spec)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON; floats round-trip exactly."""
        return {
            "preprocessor": self.preprocessor.to_dict(),
            "estimator": None if self.estimator is None else self.estimator.to_dict(),
        }
