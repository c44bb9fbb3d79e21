"""The scikit-learn preprocessing derived from a feature spec."""

from __future__ import annotations

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

from features.spec import Column, FeatureSpec
from features.transformers import QuantileClipper, RatioFeatures

_SCALERS: dict[str, type[TransformerMixin]] = {
    "standard": StandardScaler,
    "robust": RobustScaler,
    "minmax": MinMaxScaler,
}


def _column_steps(column: Column) -> list[tuple[str, TransformerMixin]]:
    if column.kind == "numeric":
        steps: list[tuple[str, TransformerMixin]] = [
            ("impute", SimpleImputer(strategy=column.impute, fill_value=column.fill_value))
        ]
        if column.clip_quantiles is not None:
            low, high = column.clip_quantiles
            steps.append(("clip", QuantileClipper(lower=low, upper=high)))
        if column.scale != "none":
            steps.append(("scale", _SCALERS[column.scale]()))
        return steps
    if column.kind == "boolean":
        return [
            ("impute", SimpleImputer(strategy=column.impute, fill_value=float(column.fill_value)))
        ]
    known = list(column.categories)
    if column.impute == "constant" and column.fill_value not in known:
        known.append(column.fill_value)  # nulls become this value, a category of their own
    categories = "auto" if column.allow_unknown else [known]
    encoder: TransformerMixin
    if column.encode == "onehot":
        encoder = OneHotEncoder(
            categories=categories,
            handle_unknown="infrequent_if_exist",
            min_frequency=column.min_frequency,
            sparse_output=False,
        )
    else:
        encoder = OrdinalEncoder(
            categories=categories, handle_unknown="use_encoded_value", unknown_value=-1
        )
    imputer = SimpleImputer(strategy=column.impute, fill_value=column.fill_value)
    return [("impute", imputer), ("encode", encoder)]


def build_preprocessor(spec: FeatureSpec) -> ColumnTransformer:
    """One branch per feature (impute, clip, scale or encode) plus one for the spec's ratios.

    Takes the validated frame (:func:`features.validate_frame`) and returns a pandas frame
    with readable column names, such as ``bill_length_mm`` or ``island_Dream``.
    """
    branches: list[tuple[str, Pipeline, list[str]]] = [
        (column.name, Pipeline(_column_steps(column)), [column.name]) for column in spec.features
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
