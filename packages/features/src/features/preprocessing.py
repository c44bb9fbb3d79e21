"""The scikit-learn preprocessing derived from a feature spec."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from features.compiled import CompiledPreprocessor
from features.exceptions import CompileError
from features.spec import FeatureSpec
from features.transformers import RatioFeatures


def build_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    """One branch per feature (impute, clip, scale or encode) plus one for the spec's ratios.

    Takes the validated frame (:meth:`features.ValidRows.frame`) and returns a pandas frame
    with readable column names, such as ``bill_length_mm`` or ``island_Dream``.
    """
    branches: list[tuple[str, Pipeline, list[str]]] = [
        (column.name, Pipeline(column.steps()), [column.name]) for column in spec.features
    ]
    if spec.ratios:
        inputs = list(dict.fromkeys(n for r in spec.ratios for n in (r.numerator, r.denominator)))
        ratios = Pipeline(
            [
                ("ratio", RatioFeatures(pairs=[(r.numerator, r.denominator) for r in spec.ratios])),
                ("impute", SimpleImputer(strategy="median")),
                ("scale", StandardScaler()),
            ]
        )
        branches.append(("ratios", ratios, inputs))
    transformer = ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=False)
    return transformer.set_output(transform="pandas")


def _scaler(step: TransformerMixin | None, width: int) -> dict[str, list[float]]:
    """A fitted scaler (or none) as ``(x - subtract) / divide * multiply + add``."""
    zeros, ones = [0.0] * width, [1.0] * width
    identity = {"subtract": zeros, "divide": ones, "multiply": ones, "add": zeros}
    if step is None:
        return identity
    if isinstance(step, StandardScaler) and step.with_mean and step.with_std:
        return {**identity, "subtract": _floats(step.mean_), "divide": _floats(step.scale_)}
    if isinstance(step, RobustScaler) and step.with_centering and step.with_scaling:
        return {**identity, "subtract": _floats(step.center_), "divide": _floats(step.scale_)}
    if isinstance(step, MinMaxScaler) and not step.clip:
        return {**identity, "multiply": _floats(step.scale_), "add": _floats(step.min_)}
    msg = f"unsupported scaling step {step!r}"
    raise CompileError(msg)


def _floats(values: Any) -> list[float]:  # noqa: ANN401 - an array-like of numbers
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def _imputed(step: TransformerMixin) -> Any:  # noqa: ANN401 - a number or a string
    """The single value a fitted one-column SimpleImputer writes into nulls."""
    if not isinstance(step, SimpleImputer) or step.add_indicator or len(step.statistics_) != 1:
        msg = f"expected a one-column SimpleImputer, got {step!r}"
        raise CompileError(msg)
    value = step.statistics_[0]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        msg = "imputer learned no value (the column was empty when fitted)"
        raise CompileError(msg)
    return value.item() if isinstance(value, np.generic) else value


def _compile_column(steps: dict[str, TransformerMixin], column: str) -> dict[str, Any]:
    fill = _imputed(steps["impute"])
    encoder = steps.get("encode")
    if encoder is None:
        clip = steps.get("clip")
        low, high = (
            (-np.inf, np.inf) if clip is None else (clip.lower_bounds_[0], clip.upper_bounds_[0])
        )
        return {
            "kind": "number",
            "column": column,
            "fill": float(fill),
            "low": float(low),
            "high": float(high),
            "scale": _scaler(steps.get("scale"), 1),
        }
    categories = [str(c) for c in encoder.categories_[0]]
    if isinstance(encoder, OrdinalEncoder):
        return {"kind": "ordinal", "column": column, "fill": str(fill), "categories": categories}
    if not isinstance(encoder, OneHotEncoder) or encoder.drop is not None:
        msg = f"unsupported encoder {encoder!r}"
        raise CompileError(msg)
    grouped = encoder.min_frequency is not None or encoder.max_categories is not None
    rare = encoder.infrequent_categories_[0] if grouped else None
    infrequent = None if rare is None else [str(c) for c in rare]
    frequent = [c for c in categories if infrequent is None or c not in infrequent]
    return {
        "kind": "onehot",
        "column": column,
        "fill": str(fill),
        "categories": frequent,
        "infrequent": infrequent,
    }


def compile_preprocessor(transformer: ColumnTransformer) -> CompiledPreprocessor:
    """Describe a fitted :func:`build_preprocessor` transformer as plain data for NumPy.

    Raises :class:`CompileError` for a step it does not know; callers then keep scikit-learn.
    """
    branches: list[dict[str, Any]] = []
    for name, pipeline, columns in transformer.transformers_:
        if pipeline == "drop":
            continue
        steps = dict(pipeline.steps)
        if name == "ratios":
            ratio = steps["ratio"]
            names = list(columns)
            fill = _floats(steps["impute"].statistics_)
            if len(fill) != len(ratio.pairs_) or not np.isfinite(fill).all():
                msg = "ratio imputer learned no value for some ratio"
                raise CompileError(msg)
            branches.append(
                {
                    "kind": "ratios",
                    "pairs": [[names[i], names[j]] for i, j in ratio.pairs_],
                    "eps": float(ratio.eps),
                    "fill": fill,
                    "scale": _scaler(steps.get("scale"), len(ratio.pairs_)),
                }
            )
        else:
            branches.append(_compile_column(steps, columns[0]))
    width = len(transformer.get_feature_names_out())
    return CompiledPreprocessor.from_dict({"branches": branches, "n_features_out": width})
