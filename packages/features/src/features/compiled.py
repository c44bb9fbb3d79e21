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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from features.spec import FeatureSpec

Columns = Mapping[str, Any]
"""Validated columns by name (:attr:`features.ValidRows.columns`): float64 arrays for numbers
and booleans (NaN for null), :class:`features.Categories` for categories."""


_SHAPES = {0: "a number", 1: "a list of numbers", 2: "a list of equal-length lists of numbers"}
_FOUND = {"U": "text", "b": "true/false", "O": "null, text or nested lists"}


def json_numbers(
    value: Any,  # noqa: ANN401 - parsed JSON
    field: str,
    *,
    ndim: int,
    integers: bool = False,
    infinite: bool = False,
) -> np.ndarray:
    """``value`` (parsed JSON) as an array of ``ndim`` dimensions: float64, or intp with
    ``integers``. A ``ValueError`` naming ``field`` refuses what is not that (text, null or
    true/false where numbers belong, ragged lists, fractions where integers belong, integers
    beyond 64 bits), NaN, and an infinity unless ``infinite``. Time and memory are linear in
    its size: this is how compiled forms read their numbers from JSON."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged lists
        array = np.empty(0, dtype=object)
    kinds = "i" if integers else "if"
    if array.ndim != ndim or (array.size and array.dtype.kind not in kinds):
        found = _FOUND.get(array.dtype.kind, "fractions" if integers else "something else")
        wanted = _SHAPES[ndim].replace("numbers", "integers") if integers else _SHAPES[ndim]
        found = f"{array.ndim} dimension(s)" if array.ndim != ndim else found
        msg = f"{field}: expected {wanted}, found {found}"
        raise ValueError(msg)
    if integers:
        return array.astype(np.intp)
    array = array.astype(np.float64)
    if np.isnan(array).any():
        msg = f"{field}: NaN where a number belongs"
        raise ValueError(msg)
    if not infinite and np.isinf(array).any():
        msg = f"{field}: an infinity where a finite number belongs"
        raise ValueError(msg)
    return array


def json_texts(value: Any, field: str) -> list[str]:  # noqa: ANN401 - parsed JSON
    """``value`` (parsed JSON) as a list of texts, else a ``ValueError`` naming ``field``."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = f"{field}: expected a list of text"
        raise ValueError(msg)
    return value


def _text(value: Any, field: str) -> str:  # noqa: ANN401 - parsed JSON
    if not isinstance(value, str):
        msg = f"{field}: expected text"
        raise ValueError(msg)  # noqa: TRY004 - bad data, refused like every other value
    return value


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
    def from_dict(cls, raw: Mapping[str, Any], field: str, width: int) -> _Affine:
        """Four lists of ``width`` finite numbers; nothing divides by zero."""
        parts = {k: json_numbers(raw[k], f"{field}.{k}", ndim=1) for k in cls.__dataclass_fields__}
        for name, part in parts.items():
            if len(part) != width:
                msg = f"{field}.{name}: {len(part)} numbers for {width} column(s)"
                raise ValueError(msg)
        if not parts["divide"].all():
            msg = f"{field}.divide: a zero divisor"
            raise ValueError(msg)
        return cls(**parts)

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


def _number(raw: Mapping[str, Any], field: str) -> _Number:
    low, high = (
        float(json_numbers(raw[k], f"{field}.{k}", ndim=0, infinite=True)) for k in ("low", "high")
    )
    if low > high:
        msg = f"{field}.low: {low} is above high, {high}"
        raise ValueError(msg)
    return _Number(
        _text(raw["column"], f"{field}.column"),
        float(json_numbers(raw["fill"], f"{field}.fill", ndim=0)),
        low,
        high,
        _Affine.from_dict(raw["scale"], f"{field}.scale", 1),
    )


def _onehot(raw: Mapping[str, Any], field: str) -> _OneHot:
    infrequent = raw["infrequent"]
    return _OneHot(
        _text(raw["column"], f"{field}.column"),
        _text(raw["fill"], f"{field}.fill"),
        np.asarray(json_texts(raw["categories"], f"{field}.categories"), dtype=object),
        None
        if infrequent is None
        else np.asarray(json_texts(infrequent, f"{field}.infrequent"), dtype=object),
    )


def _ordinal(raw: Mapping[str, Any], field: str) -> _Ordinal:
    return _Ordinal(
        _text(raw["column"], f"{field}.column"),
        _text(raw["fill"], f"{field}.fill"),
        np.asarray(json_texts(raw["categories"], f"{field}.categories"), dtype=object),
    )


def _ratios(raw: Mapping[str, Any], field: str) -> _Ratios:
    pairs = raw["pairs"]
    if not isinstance(pairs, list) or any(len(json_texts(p, f"{field}.pairs")) != 2 for p in pairs):
        msg = f"{field}.pairs: expected a list of [numerator, denominator] column names"
        raise ValueError(msg)
    fill = json_numbers(raw["fill"], f"{field}.fill", ndim=1)
    if len(fill) != len(pairs):
        msg = f"{field}.fill: {len(fill)} numbers for {len(pairs)} ratio(s)"
        raise ValueError(msg)
    return _Ratios(
        [(numerator, denominator) for numerator, denominator in pairs],
        float(json_numbers(raw["eps"], f"{field}.eps", ndim=0)),
        fill,
        _Affine.from_dict(raw["scale"], f"{field}.scale", len(pairs)),
    )


_READERS: dict[str, Callable[[Mapping[str, Any], str], _Branch]] = {
    "number": _number,
    "onehot": _onehot,
    "ordinal": _ordinal,
    "ratios": _ratios,
}


def _branch(raw: Mapping[str, Any], field: str) -> _Branch:
    """One branch from plain data, every value checked (:func:`json_numbers`)."""
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in _READERS:
        msg = f"{field}.kind: unknown compiled preprocessing branch kind {kind!r}"
        raise ValueError(msg)
    return _READERS[kind](raw, field)


@dataclass(frozen=True)
class CompiledPreprocessor:
    """The fitted preprocessing as NumPy operations, branch by branch, in output order."""

    branches: tuple[_Branch, ...]
    n_features_out: int
    description: Mapping[str, Any]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CompiledPreprocessor:
        """Build from plain data (:func:`features.compile_preprocessor`, or JSON of it),
        refusing with a ``ValueError`` naming the field what is not the plain data it writes
        (numbers checked by :func:`json_numbers`); in time linear in its size."""
        branches = tuple(
            _branch(branch, f"branches[{index}]") for index, branch in enumerate(raw["branches"])
        )
        width = int(json_numbers(raw["n_features_out"], "n_features_out", ndim=0, integers=True))
        made = sum(branch.width for branch in branches)
        if width != made:
            msg = f"n_features_out: {width}, but the branches make {made} features"
            raise ValueError(msg)
        return cls(branches, width, raw)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (floats round-trip exactly; bounds may be +-Infinity)."""
        return dict(self.description)

    def check_inputs(self, spec: FeatureSpec) -> None:
        """Refuse, with a ``ValueError`` naming the branch, one that reads a column that is
        not a feature of ``spec``, or one of another kind (a category as a number, or a number
        as a category): :meth:`transform` could not run on what ``spec`` validates."""
        kinds = {column.name: column.kind for column in spec.features}
        categorical = {"categorical", "integer_categorical"}
        for index, branch in enumerate(self.branches):
            numbers = isinstance(branch, _Number | _Ratios)
            names = (
                [name for pair in branch.pairs for name in pair]
                if isinstance(branch, _Ratios)
                else [branch.column]
            )
            for name in names:
                if name not in kinds or (kinds[name] in categorical) == numbers:
                    wanted = "number" if numbers else "category"
                    msg = f"branches[{index}]: reads {name!r}, not a {wanted} feature of the spec"
                    raise ValueError(msg)

    def transform(self, columns: Columns) -> np.ndarray:
        """The model matrix, shape ``(n_rows, n_features_out)``, from validated columns.

        Each branch writes straight into its own columns of one column-major matrix.
        """
        n_rows = len(next(iter(columns.values()))) if columns else 0
        out = np.empty((n_rows, self.n_features_out), order="F")
        start = 0
        for branch in self.branches:
            branch.write(columns, out[:, start : start + branch.width])
            start += branch.width
        return out
