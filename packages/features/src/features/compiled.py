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

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

Columns = Mapping[str, Any]
"""Validated columns by name (:attr:`features.ValidRows.columns`): float64 arrays for numbers
and booleans (NaN for null), :class:`features.Categories` for categories."""


def _codes(values: Any, categories: np.ndarray, fill: str) -> np.ndarray:  # noqa: ANN401
    """Position of each value in ``categories``, -1 for a value not among them; nulls (NaN or
    None) are ``fill`` first. :class:`features.Categories` are looked up once per category."""
    position = {category: index for index, category in enumerate(categories)}.get
    if hasattr(values, "codes") and hasattr(values, "categories"):
        distinct = [position(c, -1) for c in values.categories]
        lookup = np.array([*distinct, position(fill, -1)], dtype=np.intp)  # code -1: null
        return np.asarray(lookup[np.asarray(values.codes)])
    values = np.asarray(values, dtype=object)
    nulls = (values != values) | (values == None)  # noqa: E711, PLR0124 - elementwise NaN/None
    codes = np.fromiter((position(v, -1) for v in values), dtype=np.intp, count=len(values))
    codes[nulls] = position(fill, -1)
    return codes


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

    @cached_property
    def _steps(self) -> tuple[tuple[np.ufunc, np.ndarray], ...]:
        """The operations that change something: subtracting 0, dividing or multiplying by 1
        are exact no-ops and skipped; adding 0 is kept (it turns -0.0 into 0.0, as
        scikit-learn's does)."""
        steps = [
            (np.subtract, self.subtract, self.subtract.any()),
            (np.divide, self.divide, (self.divide != 1.0).any()),
            (np.multiply, self.multiply, (self.multiply != 1.0).any()),
            (np.add, self.add, True),
        ]
        return tuple((op, operand) for op, operand, needed in steps if needed)

    def apply(self, x: np.ndarray) -> None:
        """In place, in scikit-learn's order of operations (so the results are identical)."""
        for op, operand in self._steps:
            op(x, operand, out=x)


@dataclass(frozen=True)
class _Number:
    column: str
    fill: float
    low: float
    high: float
    scale: _Affine

    width = 1

    def write(self, columns: Columns, out: np.ndarray) -> None:
        column = out[:, 0]
        column[:] = columns[self.column]
        column[np.isnan(column)] = self.fill
        if self.low > -np.inf or self.high < np.inf:  # clipping at infinities changes nothing
            np.clip(column, self.low, self.high, out=column)
        self.scale.apply(column)


@dataclass(frozen=True)
class _OneHot:
    column: str
    fill: str
    categories: np.ndarray  # the frequent categories, in output order
    infrequent: np.ndarray | None  # rare categories, and unknown ones, share one last column

    @property
    def width(self) -> int:
        return len(self.categories) + (self.infrequent is not None)

    def write(self, columns: Columns, out: np.ndarray) -> None:
        codes = _codes(columns[self.column], self.categories, self.fill)
        if self.infrequent is not None:
            codes[codes < 0] = self.width - 1
        out[:] = 0.0
        known = codes >= 0
        out[np.flatnonzero(known), codes[known]] = 1.0


@dataclass(frozen=True)
class _Ordinal:
    column: str
    fill: str
    categories: np.ndarray

    width = 1

    def write(self, columns: Columns, out: np.ndarray) -> None:
        out[:, 0] = _codes(columns[self.column], self.categories, self.fill)


@dataclass(frozen=True)
class _Ratios:
    pairs: list[tuple[str, str]]
    eps: float
    fill: np.ndarray
    scale: _Affine

    @property
    def width(self) -> int:
        return len(self.pairs)

    def write(self, columns: Columns, out: np.ndarray) -> None:
        for index, (numerator, denominator) in enumerate(self.pairs):
            ratio = out[:, index]
            num = np.asarray(columns[numerator], dtype=np.float64)
            den = np.asarray(columns[denominator], dtype=np.float64)
            ratio[:] = np.nan
            np.divide(num, den, out=ratio, where=np.abs(den) > self.eps)
            ratio[np.isnan(ratio)] = self.fill[index]
        self.scale.apply(out)


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
        """The model matrix, shape ``(n_rows, n_features_out)``, from validated columns.

        Each branch writes straight into its own columns of one column-major matrix.
        """
        width = sum(branch.width for branch in self.branches)
        if width != self.n_features_out:
            msg = f"compiled preprocessing makes {width} features, not {self.n_features_out}"
            raise ValueError(msg)
        n_rows = len(next(iter(columns.values()))) if columns else 0
        out = np.empty((n_rows, width), order="F")
        start = 0
        for branch in self.branches:
            branch.write(columns, out[:, start : start + branch.width])
            start += branch.width
        return out
