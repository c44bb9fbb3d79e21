"""Columnar validation of a DataFrame against a feature spec, vectorised per column.

The rules are the record model's rules (:mod:`features.records`), applied to whole columns:
missing column, wrong type, null where not nullable, NaN or infinity, out of range and
category not allowed. Invalid rows are returned in a report with their position, column and
reason, never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from features.spec import BooleanColumn, CategoricalColumn, Column, FeatureSpec, NumericColumn

ISSUE_COLUMNS = ["row", "column", "reason"]


@dataclass(frozen=True)
class ValidationReport:
    """What was wrong with a frame: one row in ``issues`` per (row, column, reason).

    ``row`` is the 0-based position in the validated frame (add an offset for chunks).
    """

    n_rows: int
    issues: pd.DataFrame
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()

    @cached_property
    def invalid_rows(self) -> np.ndarray:
        """Sorted positions of the rows with at least one issue."""
        return np.unique(self.issues["row"].to_numpy(dtype=np.int64))

    @property
    def n_invalid(self) -> int:
        """How many rows were rejected."""
        return len(self.invalid_rows)

    @property
    def n_valid(self) -> int:
        """How many rows passed."""
        return self.n_rows - self.n_invalid

    def reasons_by_row(self) -> pd.DataFrame:
        """One line per rejected row: ``row`` and all its problems joined as ``reasons``."""
        if self.issues.empty:
            return pd.DataFrame(
                {"row": pd.Series(dtype=np.int64), "reasons": pd.Series(dtype=object)}
            )
        # join each run of equal rows, in issue order (most runs are one issue long)
        issues = self.issues
        if not issues["row"].is_monotonic_increasing:  # validate_frame sorts them already
            issues = issues.iloc[np.argsort(issues["row"].to_numpy(np.int64), kind="stable")]
        rows = issues["row"].to_numpy(np.int64)
        text = (issues["column"] + ": " + issues["reason"]).to_numpy(object)
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        joined = text[starts]
        for index in np.flatnonzero(ends - starts > 1):
            joined[index] = "; ".join(text[starts[index] : ends[index]])
        return pd.DataFrame({"row": rows[starts], "reasons": pd.Series(joined, dtype=object)})

    def summary(self) -> str:
        """A one-paragraph account: counts, the commonest reasons, ignored columns."""
        lines = [f"{self.n_rows} rows: {self.n_valid} valid, {self.n_invalid} rejected"]
        if not self.issues.empty:
            counts = self.issues.value_counts(["column", "reason"], sort=False)
            top = counts.sort_index().sort_values(ascending=False, kind="stable").head(10)
            lines += [
                f"  {key[0]}: {key[1]} ({n} rows)" for key, n in zip(top.index, top, strict=True)
            ]
        if self.extra_columns:
            lines.append(f"  extra columns ignored: {', '.join(self.extra_columns)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ValidationResult:
    """The valid rows (spec columns, normalised dtypes, original index) and the report."""

    valid: pd.DataFrame
    report: ValidationReport


def _element_mask(values: pd.Series, accept: Callable[[object], bool]) -> np.ndarray:
    """For object columns only: which non-null elements fail ``accept``."""
    return np.fromiter(
        (v is not None and v is not pd.NA and not _is_nan(v) and not accept(v) for v in values),
        dtype=bool,
        count=len(values),
    )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_bool(value: object) -> bool:
    return isinstance(value, bool | np.bool_)


Checks = list[tuple[str, np.ndarray]]


def _numeric(column: NumericColumn, series: pd.Series) -> tuple[pd.Series, Checks]:
    if ptypes.is_bool_dtype(series.dtype):
        wrong = series.notna().to_numpy()
        values = pd.Series(np.nan, index=series.index)
    elif ptypes.is_numeric_dtype(series.dtype):
        wrong = np.zeros(len(series), dtype=bool)
        values = series.astype("float64")
    elif ptypes.is_object_dtype(series.dtype):
        wrong = _element_mask(series, _is_number)
        values = pd.to_numeric(series.where(~wrong), errors="coerce").astype("float64")
    else:
        wrong = series.notna().to_numpy()
        values = pd.Series(np.nan, index=series.index)
    array = values.to_numpy()
    checks: Checks = [("wrong type: expected a number", wrong)]
    infinite = np.isinf(array)
    checks.append(("not finite", infinite))
    finite = np.where(infinite, np.nan, array)
    with np.errstate(invalid="ignore"):
        if column.min is not None:
            checks.append((f"below minimum {column.min:g}", finite < column.min))
        if column.max is not None:
            checks.append((f"above maximum {column.max:g}", finite > column.max))
    nulls = np.isnan(array) & ~wrong
    return values, [*checks, *_null_check(column, nulls)]


def _categorical(column: CategoricalColumn, series: pd.Series) -> tuple[pd.Series, Checks]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _from_pandas_categorical(column, series)
    nulls = series.isna().to_numpy()
    if ptypes.is_string_dtype(series.dtype) and not ptypes.is_object_dtype(series.dtype):
        wrong = np.zeros(len(series), dtype=bool)
    elif ptypes.is_object_dtype(series.dtype):
        if pd.api.types.infer_dtype(series, skipna=True) in {"string", "empty"}:
            wrong = np.zeros(len(series), dtype=bool)
        else:
            wrong = _element_mask(series, lambda v: isinstance(v, str))
    else:
        wrong = ~nulls
    values = series.astype(object).where(~(nulls | wrong), np.nan)
    checks: Checks = [("wrong type: expected a string", wrong)]
    if not column.allow_unknown:
        unknown = ~(nulls | wrong) & ~values.isin(column.categories).to_numpy()
        checks.append((_not_allowed(column), unknown))
    return values, [*checks, *_null_check(column, nulls)]


def _from_pandas_categorical(
    column: CategoricalColumn, series: pd.Series
) -> tuple[pd.Series, Checks]:
    """The same checks, made once per distinct value instead of once per row."""
    categories = series.cat.categories
    codes = series.cat.codes.to_numpy()
    nulls = codes < 0
    text = np.array([isinstance(c, str) for c in categories] + [True], dtype=bool)
    known = set(column.categories)
    allowed = np.array([c in known for c in categories] + [True], dtype=bool)
    wrong = ~text[codes]  # code -1 (null) picks the last entry: True
    values = series.where(~wrong) if wrong.any() else series  # stays categorical
    checks: Checks = [("wrong type: expected a string", wrong)]
    if not column.allow_unknown:
        checks.append((_not_allowed(column), ~wrong & ~allowed[codes]))
    return values, [*checks, *_null_check(column, nulls)]


def _not_allowed(column: CategoricalColumn) -> str:
    return f"category not allowed (allowed: {', '.join(column.categories)})"


def _boolean(column: BooleanColumn, series: pd.Series) -> tuple[pd.Series, Checks]:
    nulls = series.isna().to_numpy()
    if ptypes.is_bool_dtype(series.dtype):
        wrong = np.zeros(len(series), dtype=bool)
    elif ptypes.is_object_dtype(series.dtype):
        wrong = _element_mask(series, _is_bool)
    else:
        wrong = ~nulls
    ok = ~(nulls | wrong)
    values = pd.Series(np.nan, index=series.index)
    values[ok] = series[ok].astype(bool).astype("float64")
    return values, [("wrong type: expected true or false", wrong), *_null_check(column, nulls)]


def _null_check(column: Column, nulls: np.ndarray) -> Checks:
    return [] if column.nullable else [("null not allowed", nulls)]


def check_column(column: Column, series: pd.Series) -> tuple[pd.Series, Checks]:
    """Normalise one column (float64 for numbers and booleans, object for strings, NaN for
    missing; a pandas categorical stays one) and return it with its failing masks."""
    if column.kind == "numeric":
        return _numeric(column, series)
    if column.kind == "categorical":
        return _categorical(column, series)
    return _boolean(column, series)


def _issues(found: list[tuple[np.ndarray, str, str]]) -> pd.DataFrame:
    """One frame of issues, sorted by row, then column, then the order of the checks; built
    once from NumPy (a frame per check and a pandas sort cost more than the checks)."""
    if not found:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in ISSUE_COLUMNS}).astype(
            {"row": np.int64}
        )
    counts = [len(rows) for rows, _, _ in found]
    names = np.array([name for _, name, _ in found], dtype=object)
    reasons = np.array([reason for _, _, reason in found], dtype=object)
    rank = {name: index for index, name in enumerate(sorted(set(names)))}
    rows = np.concatenate([rows for rows, _, _ in found])
    by_name = np.repeat([rank[name] for name in names], counts)
    order = np.lexsort((by_name, rows))  # stable: checks keep their order
    return pd.DataFrame(
        {
            "row": rows[order],
            "column": np.repeat(names, counts)[order],
            "reason": np.repeat(reasons, counts)[order],
        }
    )


def validate_frame(
    spec: FeatureSpec, frame: pd.DataFrame, *, require_target: bool = False
) -> ValidationResult:
    """Split ``frame`` into valid rows and a report of every invalid one.

    The features (and the target when ``require_target``) are checked; the spec's id column
    is carried along unchecked; any other column is ignored and listed in the report.
    """
    columns: list[Column] = [*spec.features, *([spec.target] if require_target else [])]
    known = {c.name for c in columns} | {spec.target.name}
    if spec.id_column is not None:
        known.add(spec.id_column)
    extra = tuple(str(name) for name in frame.columns if name not in known)
    n_rows = len(frame)
    positions = np.arange(n_rows, dtype=np.int64)

    found: list[tuple[np.ndarray, str, str]] = []  # (rows, column, reason)
    out: dict[str, pd.Series] = {}
    missing: list[str] = []
    if spec.id_column is not None and spec.id_column in frame.columns:
        out[spec.id_column] = frame[spec.id_column]
    for column in columns:
        if column.name not in frame.columns:
            missing.append(column.name)
            checks: Checks = [("missing column", np.ones(n_rows, dtype=bool))]
            out[column.name] = pd.Series(np.nan, index=frame.index)
        else:
            out[column.name], checks = check_column(column, frame[column.name])
        found += [(positions[mask], column.name, reason) for reason, mask in checks if mask.any()]
    issues = _issues(found)
    report = ValidationReport(n_rows, issues, tuple(missing), extra)
    keep = np.ones(n_rows, dtype=bool)
    keep[report.invalid_rows] = False
    valid = pd.DataFrame(out, index=frame.index).iloc[keep]
    return ValidationResult(valid, report)
