"""The estimators a config may choose, each with validated hyperparameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model.compiled import CompiledLinear, CompiledPipeline
from model.trees import compile_trees

if TYPE_CHECKING:  # scikit-learn is imported when an estimator is built, not to read a config
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

Task = Literal["classification", "regression"]


class _Estimator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def build(self, task: Task, seed: int) -> BaseEstimator:
        """A fresh, unfitted scikit-learn estimator for ``task``."""
        raise NotImplementedError

    def problems(self, task: Task) -> list[str]:
        """Options given that ``task`` would ignore (checked before any training)."""
        ignored = getattr(self, "IGNORED", {}).get(task, set()) & self.model_fields_set
        return [
            f"estimator option {name!r} does not apply to {task} ({self.kind}); remove it"  # type: ignore[attr-defined]
            for name in sorted(ignored)
        ]


class Linear(_Estimator):
    """Logistic regression (classification) or ridge regression (regression)."""

    kind: Literal["linear"] = Field(description="Selects this estimator.")
    C: float = Field(1.0, gt=0, description="Classification only: inverse regularisation strength.")
    alpha: float = Field(1.0, ge=0, description="Regression only: L2 penalty.")
    max_iter: int = Field(1000, ge=10, le=100_000, description="Solver iterations at most.")

    IGNORED: ClassVar[dict[str, set[str]]] = {"classification": {"alpha"}, "regression": {"C"}}

    def build(self, task: Task, seed: int) -> BaseEstimator:
        from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415

        if task == "classification":
            return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)
        return Ridge(alpha=self.alpha, max_iter=self.max_iter, random_state=seed)


class RandomForest(_Estimator):
    """A random forest."""

    kind: Literal["random_forest"] = Field(description="Selects this estimator.")
    n_estimators: int = Field(200, ge=1, le=5000, description="Trees in the forest.")
    max_depth: int | None = Field(
        None, ge=1, description="Depth of a tree at most; unset: no limit."
    )
    min_samples_leaf: int = Field(1, ge=1, description="Training rows in a leaf at least.")

    def build(self, task: Task, seed: int) -> BaseEstimator:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: PLC0415

        cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
        return cls(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            random_state=seed,
            n_jobs=1,
        )


class HistGradientBoosting(_Estimator):
    """Histogram gradient boosting."""

    kind: Literal["hist_gradient_boosting"] = Field(description="Selects this estimator.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="Shrinkage of each tree's step.")
    max_iter: int = Field(
        200, ge=1, le=10_000, description="Boosting iterations (trees per class, or trees) at most."
    )
    max_depth: int | None = Field(
        None, ge=1, description="Depth of a tree at most; unset: no limit."
    )
    l2_regularization: float = Field(0.0, ge=0, description="L2 penalty on leaf values.")

    def build(self, task: Task, seed: int) -> BaseEstimator:
        from sklearn.ensemble import (  # noqa: PLC0415
            HistGradientBoostingClassifier,
            HistGradientBoostingRegressor,
        )

        cls = (
            HistGradientBoostingClassifier
            if task == "classification"
            else HistGradientBoostingRegressor
        )
        return cls(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_depth=self.max_depth,
            l2_regularization=self.l2_regularization,
            random_state=seed,
        )


EstimatorConfig = Annotated[
    Linear | RandomForest | HistGradientBoosting, Field(discriminator="kind")
]


def compile_pipeline(pipeline: Pipeline) -> CompiledPipeline:
    """The NumPy form of a fitted spec-preprocessing + estimator pipeline: the preprocessing
    always, the estimator when it is linear or a tree ensemble (else it stays scikit-learn's).

    Raises :class:`features.CompileError` when the preprocessing holds an unknown step.
    """
    from features import compile_preprocessor  # noqa: PLC0415 - scikit-learn, for training

    preprocess, estimator = (step for _, step in pipeline.steps)
    compiled = _compile_linear(estimator) or compile_trees(estimator)
    return CompiledPipeline(compile_preprocessor(preprocess), compiled)


def _compile_linear(estimator: BaseEstimator) -> CompiledLinear | None:
    from sklearn.linear_model import LogisticRegression, Ridge  # noqa: PLC0415

    multinomial = getattr(estimator, "multi_class", "auto") in {"auto", "deprecated"}
    if (
        isinstance(estimator, LogisticRegression)
        and multinomial
        and estimator.solver != "liblinear"
    ):
        classes = [str(c) for c in estimator.classes_]
        kind = "logistic"
    elif isinstance(estimator, Ridge):
        classes, kind = [], "linear"
    else:
        return None
    coef = np.atleast_2d(estimator.coef_)
    if coef.shape[0] != (len(classes) if len(classes) > 2 else 1):
        return None
    return CompiledLinear.from_dict(
        {
            "kind": kind,
            "coef": coef.tolist(),
            "intercept": np.atleast_1d(estimator.intercept_).tolist(),
            "classes": classes,
        }
    )
