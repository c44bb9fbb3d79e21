"""The fitted preprocessing as plain NumPy: fast to run, and free of scikit-learn at run time.

:func:`features.compile_preprocessor` reads the fitted ``ColumnTransformer`` that
:func:`features.build_preprocessor` made and describes every branch as plain data (fill values,
clip bounds, scale factors, category lists). :class:`CompiledPreprocessor` applies that
description to validated columns with the same arithmetic, in the same order, as
scikit-learn, without its per-call input checks: one record takes microseconds, not
milliseconds, and a serving process need not import scikit-learn at all. Model training
checks the two paths agree before it ships the compiled one (see ``model.compiled``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Columns = Mapping[str, Any]
"""Validated columns by name: float64 arrays for numbers and booleans (NaN for null); for
categories, object arrays of strings (NaN or None for null) or pandas ``Categorical`` arrays,
as :func:`features.validate_frame` makes them."""


def frame_columns(frame: Any, names: Iterable[str]) -> dict[str, Any]:  # noqa: ANN401
    """The named columns of a validated DataFrame: NumPy arrays, and pandas ``Categorical``
    arrays kept as they are (their codes make encoding cheap). No copy where possible."""
    return {
        name: frame[name].array if hasattr(frame[name], "cat") else frame[name].to_numpy()
        for name in names
    }


def _missing(values: np.ndarray) -> np.ndarray:
    """Nulls in a column: NaN for numbers; NaN or None for object arrays."""
    if values.dtype != object:
        return np.asarray(np.isnan(values))
    nan = values != values  # noqa: PLR0124 - only NaN differs from itself
    return np.asarray(nan | (values == None), dtype=bool)  # noqa: E711 - elementwise


def _fill(values: np.ndarray, fill: Any) -> np.ndarray:  # noqa: ANN401 - a number or a string
    missing = _missing(values)
    if not missing.any():
        return values
    filled = values.copy()
    filled[missing] = fill
    return filled


def _codes(values: Any, categories: np.ndarray, fill: str) -> np.ndarray:  # noqa: ANN401
    """Position of each value in ``categories``, -1 for a value not among them; nulls are
    ``fill`` first. A pandas ``Categorical`` is looked up once per distinct value."""
    position = {category: index for index, category in enumerate(categories)}.get
    if hasattr(values, "codes") and hasattr(values, "categories"):
        distinct = [position(c, -1) for c in values.categories]
        lookup = np.array([*distinct, position(fill, -1)], dtype=np.intp)  # code -1: null
        return np.asarray(lookup[np.asarray(values.codes)])
    filled = _fill(np.asarray(values, dtype=object), fill)
    return np.fromiter((position(v, -1) for v in filled), dtype=np.intp, count=len(filled))


@dataclass(frozen=True)
class _Affine:
    """``(x - subtract) / divide * multiply + add``: standard, robust and min-max scaling."""

    subtract: np.ndarray
    divide: np.ndarray
    multiply: np.ndarray
    add: np.ndarray

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> _Affine:
        return cls(*(np.asarray(raw[k], dtype=np.float64) for k in cls.__dataclass_fields__))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x - self.subtract) / self.divide * self.multiply + self.add)


@dataclass(frozen=True)
class _Number:
    column: str
    fill: float
    low: float
    high: float
    scale: _Affine

    def transform(self, columns: Columns) -> np.ndarray:
        x = _fill(np.asarray(columns[self.column], dtype=np.float64), self.fill)
        return self.scale.apply(np.clip(x, self.low, self.high))[:, None]


@dataclass(frozen=True)
class _OneHot:
    column: str
    fill: str
    categories: np.ndarray  # the frequent categories, in output order
    infrequent: np.ndarray | None  # rare categories, and unknown ones, share one last column

    def transform(self, columns: Columns) -> np.ndarray:
        codes = _codes(columns[self.column], self.categories, self.fill)
        width = len(self.categories) + (self.infrequent is not None)
        if self.infrequent is not None:
            codes = np.where(codes < 0, width - 1, codes)
        out = np.zeros((len(codes), width))
        known = codes >= 0
        out[np.flatnonzero(known), codes[known]] = 1.0
        return out


@dataclass(frozen=True)
class _Ordinal:
    column: str
    fill: str
    categories: np.ndarray

    def transform(self, columns: Columns) -> np.ndarray:
        return _codes(columns[self.column], self.categories, self.fill).astype(np.float64)[:, None]


@dataclass(frozen=True)
class _Ratios:
    pairs: list[tuple[str, str]]
    eps: float
    fill: np.ndarray
    scale: _Affine

    def transform(self, columns: Columns) -> np.ndarray:
        num = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n, _ in self.pairs])
        den = np.column_stack([np.asarray(columns[d], dtype=np.float64) for _, d in self.pairs])
        out = np.full(num.shape, np.nan)
        np.divide(num, den, out=out, where=np.abs(den) > self.eps)
        out = np.where(np.isnan(out), self.fill, out)
        return self.scale.apply(out)


_Branch = _Number | _OneHot | _Ordinal | _Ratios


def _branch(raw: Mapping[str, Any]) -> _Branch:
    kind = raw["kind"]
    if kind == "number":
        return _Number(
            raw["column"],
            float(raw["fill"]),
            float(raw["low"]),
            float(raw["high"]),
            _Affine.from_dict(raw["scale"]),
        )
    if kind == "onehot":
        infrequent = raw["infrequent"]
        return _OneHot(
            raw["column"],
            raw["fill"],
            np.asarray(raw["categories"], dtype=object),
            None if infrequent is None else np.asarray(infrequent, dtype=object),
        )
    if kind == "ordinal":
        return _Ordinal(raw["column"], raw["fill"], np.asarray(raw["categories"], dtype=object))
    if kind == "ratios":
        return _Ratios(
            [(str(n), str(d)) for n, d in raw["pairs"]],
            float(raw["eps"]),
            np.asarray(raw["fill"], dtype=np.float64),
            _Affine.from_dict(raw["scale"]),
        )
    msg = f"unknown compiled preprocessing branch kind {kind!r}"
    raise ValueError(msg)


@dataclass(frozen=True)
class CompiledPreprocessor:
    """The fitted preprocessing as NumPy operations, branch by branch, in output order."""

    branches: tuple[_Branch, ...]
    n_features_out: int
    description: Mapping[str, Any]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompiledPreprocessor:
        """Build from plain data (:func:`features.compile_preprocessor`, or JSON of it)."""
        branches = tuple(_branch(branch) for branch in raw["branches"])
        return cls(branches, int(raw["n_features_out"]), raw)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (floats round-trip exactly; bounds may be +-Infinity)."""
        return dict(self.description)

    def transform(self, columns: Columns) -> np.ndarray:
        """The model matrix, shape ``(n_rows, n_features_out)``, from validated columns."""
        out = np.hstack([branch.transform(columns) for branch in self.branches])
        if out.shape[1] != self.n_features_out:
            msg = f"compiled preprocessing made {out.shape[1]} features, not {self.n_features_out}"
            raise ValueError(msg)
        return out
