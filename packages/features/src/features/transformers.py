"""Feature-engineering transformers, compatible with scikit-learn (pipelines, set_output, clone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _input_names(estimator: BaseEstimator, input_features: Any) -> np.ndarray:  # noqa: ANN401
    """The fitted input names, or x0..xn, checked against ``input_features`` when given."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if input_features is None:
        if fitted is not None:
            return np.asarray(fitted, dtype=object)
        return np.asarray([f"x{i}" for i in range(estimator.n_features_in_)], dtype=object)
    names = np.asarray(input_features, dtype=object)
    if fitted is not None and not np.array_equal(names, fitted):
        msg = "input_features is not equal to feature_names_in_"
        raise ValueError(msg)
    if len(names) != estimator.n_features_in_:
        msg = f"input_features should have length {estimator.n_features_in_}, got {len(names)}"
        raise ValueError(msg)
    return names


class RatioFeatures(TransformerMixin, BaseEstimator):
    """Ratios of pairs of numeric columns, such as bill length per bill depth.

    Ratios are scale-free shape features that linear models cannot form on their own.
    Only the ratio columns are returned; put this in its own branch of a ColumnTransformer.

    Parameters
    ----------
    pairs : list of (numerator, denominator), default=None
        Columns by name (for DataFrames) or by position. ``None`` takes every pair ``i < j``.
    eps : float, default=1e-12
        A denominator with ``abs(d) <= eps`` gives NaN (left to an imputer), never infinity.

    Attributes
    ----------
    pairs_ : list of (int, int)
        The pairs as column positions.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when fitted on a DataFrame with string column names

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"length": [4.0, 6.0], "depth": [2.0, 0.0]})
    >>> RatioFeatures(pairs=[("length", "depth")]).set_output(transform="pandas").fit_transform(X)
       length_per_depth
    0               2.0
    1               NaN
    """

    def __init__(
        self, *, pairs: Sequence[tuple[str | int, str | int]] | None = None, eps: float = 1e-12
    ) -> None:
        self.pairs = pairs
        self.eps = eps

    def fit(self, X: Any, y: Any = None) -> Self:  # noqa: ANN401
        """Resolve the pairs to positions; ratios learn nothing else."""
        if not isinstance(self.eps, int | float) or isinstance(self.eps, bool) or self.eps < 0:
            msg = f"RatioFeatures: parameter 'eps' must be a number >= 0, got {self.eps!r}"
            raise ValueError(msg)
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype="numeric")
        n = X.shape[1]
        if self.pairs is None:
            if n < 2:
                msg = f"RatioFeatures needs at least 2 features, got {n} feature(s)"
                raise ValueError(msg)
            self.pairs_ = [(i, j) for i in range(n) for j in range(i + 1, n)]
        else:
            self.pairs_ = [(self._position(a), self._position(b)) for a, b in self.pairs]
        return self

    def _position(self, key: str | int) -> int:
        if isinstance(key, str):
            names = list(getattr(self, "feature_names_in_", []))
            if key not in names:
                msg = f"RatioFeatures: parameter 'pairs' names column {key!r}, not in X ({names})"
                raise ValueError(msg)
            return names.index(key)
        if isinstance(key, int | np.integer) and 0 <= key < self.n_features_in_:
            return int(key)
        msg = (
            "RatioFeatures: parameter 'pairs' must hold column names or positions below "
            f"{self.n_features_in_}, got {key!r}"
        )
        raise ValueError(msg)

    def transform(self, X: Any) -> np.ndarray:  # noqa: ANN401
        """Return one column per pair: numerator / denominator, NaN where undefined."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype="numeric")
        num = X[:, [i for i, _ in self.pairs_]].astype(np.float64)
        den = X[:, [j for _, j in self.pairs_]].astype(np.float64)
        out = np.full(num.shape, np.nan)
        np.divide(num, den, out=out, where=np.abs(den) > self.eps)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:  # noqa: ANN401
        """``<numerator>_per_<denominator>`` for each pair."""
        check_is_fitted(self)
        names = _input_names(self, input_features)
        return np.asarray([f"{names[i]}_per_{names[j]}" for i, j in self.pairs_], dtype=object)

    def __sklearn_tags__(self) -> Any:  # noqa: ANN401
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class QuantileClipper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Winsorise each column at quantiles learned in ``fit``, taming outliers and typos.

    Parameters
    ----------
    lower, upper : float, default=0.01, 0.99
        Quantiles with ``0 <= lower < upper <= 1``. NaN is ignored when learning and kept.

    Attributes
    ----------
    lower_bounds_, upper_bounds_ : ndarray of shape (n_features,)
        The clipping bounds (infinite for a column with no observed value).

    Examples
    --------
    >>> import numpy as np
    >>> QuantileClipper(lower=0.0, upper=0.5).fit_transform(np.array([[1.0], [2.0], [9.0]]))
    array([[1.],
           [2.],
           [2.]])
    """

    def __init__(self, *, lower: float = 0.01, upper: float = 0.99) -> None:
        self.lower = lower
        self.upper = upper

    def fit(self, X: Any, y: Any = None) -> Self:  # noqa: ANN401
        """Learn the per-column bounds."""
        ok = all(
            isinstance(q, int | float) and not isinstance(q, bool) for q in (self.lower, self.upper)
        )
        if not ok or not 0.0 <= self.lower < self.upper <= 1.0:
            msg = (
                "QuantileClipper: parameters 'lower' and 'upper' must satisfy "
                f"0 <= lower < upper <= 1, got lower={self.lower!r}, upper={self.upper!r}"
            )
            raise ValueError(msg)
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        observed = ~np.isnan(X).all(axis=0)
        low = np.full(X.shape[1], -np.inf)
        high = np.full(X.shape[1], np.inf)
        if observed.any():
            low[observed] = np.nanquantile(X[:, observed], self.lower, axis=0)
            high[observed] = np.nanquantile(X[:, observed], self.upper, axis=0)
        self.lower_bounds_, self.upper_bounds_ = low, high
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: ANN401
        """Clip each column to its bounds."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        clipped: np.ndarray = np.clip(X, self.lower_bounds_, self.upper_bounds_)
        return clipped

    def __sklearn_tags__(self) -> Any:  # noqa: ANN401
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
