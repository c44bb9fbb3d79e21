import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures

from features import (
    Categories,
    CompiledPreprocessor,
    CompileError,
    FeatureSpec,
    build_preprocessor,
    compile_preprocessor,
    validate,
)
from features.testing import sample_frame

EVERY_KIND = FeatureSpec.from_dict(
    {
        "name": "every-kind",
        "task": "regression",
        "target": {"name": "y", "kind": "numeric"},
        "features": [
            {"name": "a", "kind": "numeric", "min": -5, "max": 5, "clip_quantiles": [0.1, 0.9]},
            {"name": "b", "kind": "numeric", "scale": "robust", "impute": "mean"},
            {"name": "c", "kind": "numeric", "scale": "minmax", "min": 0, "max": 100},
            {
                "name": "d",
                "kind": "numeric",
                "scale": "none",
                "impute": "constant",
                "fill_value": 7,
            },
            {"name": "flag", "kind": "boolean"},
            {
                "name": "colour",
                "kind": "categorical",
                "categories": ["red", "green", "blue", "teal"],
                "allow_unknown": True,
                "min_frequency": 0.2,
            },
            {"name": "size", "kind": "categorical", "categories": ["S", "M", "L"]},
            {
                "name": "grade",
                "kind": "categorical",
                "categories": ["x", "y", "z"],
                "encode": "ordinal",
                "allow_unknown": True,
                "impute": "constant",
                "fill_value": "y",
            },
        ],
        "ratios": [{"numerator": "a", "denominator": "c"}, {"numerator": "b", "denominator": "d"}],
    }
)


def _fit(spec: FeatureSpec, frame: pd.DataFrame) -> tuple[Pipeline, CompiledPreprocessor]:
    fitted = build_preprocessor(spec).set_output(transform="default")
    fitted.fit(validate(spec, frame).valid.frame())
    return fitted, compile_preprocessor(fitted)


def _both(spec: FeatureSpec, fitted: Pipeline, compiled: CompiledPreprocessor, frame: pd.DataFrame):
    valid = validate(spec, frame).valid
    return fitted.transform(valid.frame()), compiled.transform(valid.columns)


def test_penguins_identical(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    fitted, compiled = _fit(spec, penguins)
    expected, got = _both(spec, fitted, compiled, penguins)
    assert got.shape == expected.shape == (len(validate(spec, penguins).valid), 11)
    np.testing.assert_array_equal(got, expected)


def _skewed(n_rows: int, seed: int) -> pd.DataFrame:
    """Sample rows with a rare colour (infrequent) and rows with zero denominators."""
    frame = sample_frame(EVERY_KIND, n_rows, seed=seed, null_share=0.1)
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "teal"], n_rows, p=[0.45, 0.4, 0.1, 0.05])
    frame["colour"] = pd.Series(colour, dtype=object).where(rng.random(n_rows) > 0.1, None)
    frame.loc[frame.index[:3], "d"] = 0.0
    return frame


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), other=st.integers(0, 2**32 - 1))
def test_every_kind_matches_scikit_learn(seed: int, other: int) -> None:
    fitted, compiled = _fit(EVERY_KIND, _skewed(300, seed))
    assert any(b["kind"] == "onehot" and b["infrequent"] for b in compiled.to_dict()["branches"])
    fresh = _skewed(200, other)
    fresh.loc[fresh.index[:5], "colour"] = "purple"  # unknown: the infrequent bucket
    fresh.loc[fresh.index[5:10], "grade"] = "w"  # unknown: -1
    expected, got = _both(EVERY_KIND, fitted, compiled, fresh)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_round_trips_through_json(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    _, compiled = _fit(spec, penguins)
    text = json.dumps(compiled.to_dict())
    again = CompiledPreprocessor.from_dict(json.loads(text))
    columns = validate(spec, penguins).valid.columns
    np.testing.assert_array_equal(again.transform(columns), compiled.transform(columns))


def test_nulls_as_none_or_nan(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    """A null category given as None or as NaN is encoded as scikit-learn encodes a null."""
    fitted, compiled = _fit(spec, penguins)
    valid = validate(spec, penguins.head(2).assign(sex=[None, "male"])).valid
    columns = valid.columns
    expected = fitted.transform(valid.frame())  # scikit-learn gets the validator's null (NaN)
    np.testing.assert_allclose(compiled.transform(columns), expected, rtol=1e-12, atol=1e-12)
    for null in (None, np.nan):
        got = compiled.transform({**columns, "sex": np.array([null, "male"], dtype=object)})
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_unknown_step_is_refused(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    fitted = build_preprocessor(spec)
    numeric = fitted.transformers[1][1]
    numeric.steps[-1] = ("scale", PolynomialFeatures())
    fitted.fit(validate(spec, penguins).valid.frame())
    with pytest.raises(CompileError, match="unsupported scaling step PolynomialFeatures"):
        compile_preprocessor(fitted)


def test_categorical_columns_encode_like_text(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    """Pandas categoricals (as a Parquet reader makes them), an unknown category included,
    are encoded as scikit-learn encodes the same text."""
    fitted, compiled = _fit(spec, penguins)
    frame = penguins.assign(island=penguins["island"].where(penguins.index != 3, "Anvers"))
    valid_text = validate(spec, frame).valid
    categorical = frame.astype({"island": "category", "sex": "category"})
    as_codes = validate(spec, categorical).valid.columns
    assert isinstance(as_codes["sex"], Categories)
    np.testing.assert_allclose(
        compiled.transform(as_codes), fitted.transform(valid_text.frame()), rtol=1e-12, atol=1e-12
    )
