import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from features import QuantileClipper, RatioFeatures


@parametrize_with_checks([RatioFeatures(), QuantileClipper()])
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


def test_ratio_values_and_names() -> None:
    X = pd.DataFrame({"a": [4.0, 6.0, np.nan, 1.0], "b": [2.0, 0.0, 1.0, -4.0]})
    ratios = RatioFeatures(pairs=[("a", "b")]).set_output(transform="pandas")
    out = ratios.fit_transform(X)
    assert out.columns.tolist() == ["a_per_b"]
    np.testing.assert_array_equal(out["a_per_b"], [2.0, np.nan, np.nan, -0.25])


def test_ratio_all_pairs_by_default() -> None:
    X = np.array([[1.0, 2.0, 4.0]])
    ratios = RatioFeatures().fit(X)
    assert ratios.get_feature_names_out().tolist() == ["x0_per_x1", "x0_per_x2", "x1_per_x2"]
    np.testing.assert_allclose(ratios.transform(X), [[0.5, 0.25, 0.5]])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pairs": [("a", "zz")]}, "parameter 'pairs' names column 'zz'"),
        (
            {"pairs": [(0, 7)]},
            "parameter 'pairs' must hold column names or positions below 2, got 7",
        ),
        ({"eps": -1.0}, "parameter 'eps' must be a number >= 0, got -1.0"),
    ],
)
def test_ratio_bad_parameters(params: dict[str, object], message: str) -> None:
    X = pd.DataFrame({"a": [1.0], "b": [2.0]})
    with pytest.raises(ValueError, match=message):
        RatioFeatures(**params).fit(X)


def test_clipper_learns_bounds_and_keeps_nan() -> None:
    X = pd.DataFrame({"v": [*range(100), np.nan], "empty": np.nan})
    clipper = QuantileClipper(lower=0.1, upper=0.9).set_output(transform="pandas").fit(X)
    np.testing.assert_allclose(clipper.lower_bounds_, [9.9, -np.inf])
    out = clipper.transform(pd.DataFrame({"v": [-50.0, 50.0, 500.0, np.nan], "empty": 1.0}))
    assert out.columns.tolist() == ["v", "empty"]
    np.testing.assert_allclose(out["v"], [9.9, 50.0, 89.1, np.nan])
    np.testing.assert_allclose(out["empty"], 1.0)


@pytest.mark.parametrize(("lower", "upper"), [(0.9, 0.1), (-0.1, 0.5), (0.2, 1.5), ("a", 0.5)])
def test_clipper_bad_parameters(lower: object, upper: object) -> None:
    with pytest.raises(
        ValueError, match="'lower' and 'upper' must satisfy 0 <= lower < upper <= 1"
    ):
        QuantileClipper(lower=lower, upper=upper).fit(np.ones((3, 1)))  # type: ignore[arg-type]


def test_pandas_output_through_a_pipeline() -> None:
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 40.0], "b": [1.0, 1.0, 2.0, 2.0]})
    pipe = make_pipeline(QuantileClipper(lower=0.0, upper=0.75), StandardScaler())
    out = pipe.set_output(transform="pandas").fit_transform(X)
    assert out.columns.tolist() == ["a", "b"]
    assert pipe[0].transform(X)["a"].max() == 12.25  # the 75% quantile, not the outlier 40
    assert out["a"].mean() == pytest.approx(0.0)
