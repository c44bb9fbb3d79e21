"""The one validator: any input, from any door, to :class:`ValidRows` and a report.

:func:`validate` takes JSON-like records (a list of mappings), a pyarrow Table (what
:mod:`features.tables` reads from CSV and Parquet) or a pandas DataFrame. Every door is first
sorted into :class:`features.cells.Cells`; from there each column's kind decides, the same way
for all of them (:mod:`features.columns`). The whole input is refused (:class:`InputError`) when
a spec column is absent or, unless the spec says to ignore them, a column is unknown; otherwise
each invalid row is reported with its position, column and reason, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, final

import numpy as np

from features.cells import Cells
from features.columns import Categories, Column, Values
from features.exceptions import InputError
from features.spec import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

MAX_PROBLEMS = 100
"""An :class:`InputError` lists at most this many problems; its ``total`` counts them all."""

_MADE_HERE = object()


@final
class ValidRows:
    """The rows that passed the spec, as the model takes them: one typed column per feature
    (and the target, when asked), and ``rows``, their 0-based positions in the input.

    Only :func:`validate` makes one, so holding one means the rows were validated.
    """

    __slots__ = ("columns", "n_input", "rows", "spec_name")

    def __init__(
        self,
        spec_name: str,
        columns: dict[str, Values],
        rows: np.ndarray,
        n_input: int,
        _token: object = None,
    ) -> None:
        if _token is not _MADE_HERE:
            msg = "ValidRows are made by features.validate(), not directly"
            raise TypeError(msg)
        self.spec_name = spec_name
        self.columns: Mapping[str, Values] = columns
        self.rows = rows
        self.n_input = n_input

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"ValidRows({self.spec_name!r}: {len(self)} of {self.n_input} rows)"

    def frame(self) -> pd.DataFrame:
        """The columns as a pandas frame indexed by input position: float64 for numbers and
        booleans (NaN for null), object strings for categories (what scikit-learn takes)."""
        import pandas as pd  # noqa: PLC0415

        data = {
            name: pd.Series(
                values.to_numpy() if isinstance(values, Categories) else values,
                dtype=object if isinstance(values, Categories) else "float64",
            )
            for name, values in self.columns.items()
        }
        return pd.DataFrame(data).set_axis(pd.Index(self.rows), axis=0)


@dataclass(frozen=True)
class ValidationReport:
    """What was wrong with the input: one issue per (row, column, reason), sorted by row and
    then by column in spec order. ``row`` is the 0-based position in the input."""

    n_rows: int
    rows: np.ndarray
    columns: np.ndarray
    reasons: np.ndarray
    ignored_columns: tuple[str, ...] = ()

    @cached_property
    def invalid_rows(self) -> np.ndarray:
        """Sorted positions of the rows with at least one issue."""
        return np.unique(self.rows)

    @property
    def n_invalid(self) -> int:
        """How many rows were rejected."""
        return len(self.invalid_rows)

    @property
    def n_valid(self) -> int:
        """How many rows passed."""
        return self.n_rows - self.n_invalid

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        """``(row, column, reason)`` for each issue, in order."""
        return zip(self.rows.tolist(), self.columns.tolist(), self.reasons.tolist(), strict=True)

    @property
    def issues(self) -> pd.DataFrame:
        """The issues as a frame with columns ``row``, ``column`` and ``reason``."""
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame({"row": self.rows, "column": self.columns, "reason": self.reasons})

    def reasons_by_row(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, reasons)``: each rejected row once, in row order, with its problems joined
        by ``; `` in the order they were listed (a report made by hand need not be sorted)."""
        if not len(self.rows):
            return self.rows, np.array([], dtype=object)
        order = np.argsort(self.rows, kind="stable")
        rows, columns, reasons = self.rows[order], self.columns[order], self.reasons[order]
        text = [f"{c}: {r}" for c, r in zip(columns.tolist(), reasons.tolist(), strict=True)]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        ends = np.r_[starts[1:], len(rows)]
        joined = np.array(
            ["; ".join(text[s:e]) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)],
            dtype=object,
        )
        return rows[starts], joined

    def summary(self) -> str:
        """A short account: counts, the ten commonest reasons (ties in column, then reason
        order), ignored columns."""
        lines = [f"{self.n_rows} rows: {self.n_valid} valid, {self.n_invalid} rejected"]
        counts = Counter(zip(self.columns.tolist(), self.reasons.tolist(), strict=True))
        commonest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:10]
        lines += [f"  {c}: {r} ({n} rows)" for (c, r), n in commonest]
        if self.ignored_columns:
            lines.append(f"  columns ignored: {', '.join(self.ignored_columns)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ValidationResult:
    """The valid rows and the report of the others."""

    valid: ValidRows
    report: ValidationReport


def repeated_columns(spec: FeatureSpec, names: Iterable[str]) -> list[tuple[None, str, str]]:
    """The rule for a list of column names that repeats one (a file's header, a frame's
    columns, a request's list of columns): each spec column (feature, target, id or ignored
    column) named more than once is a problem ``(None, name, "appears N times")``, in name
    order; another repeated name is left to the spec's ``unknown_fields``. Linear in the names."""
    counts = Counter(names)
    known = spec.known_columns
    repeated = sorted(name for name, n in counts.items() if n > 1 and name in known)
    return [(None, name, f"appears {counts[name]} times") for name in repeated]


def check_names(
    spec: FeatureSpec, names: Sequence[str], source: str, *, target: bool = False
) -> tuple[str, ...]:
    """Refuse a header (file columns, frame columns) that repeats a spec column
    (:func:`repeated_columns`), lacks one, or (by the spec's ``unknown_fields``) holds one the
    spec does not name; return the columns that will be ignored."""
    problems: list[tuple[int | None, str | None, str]] = []
    problems += repeated_columns(spec, names)
    required = [*spec.feature_names, *([spec.target.name] if target else [])]
    problems += [(None, name, "column missing") for name in required if name not in names]
    unknown = [str(n) for n in names if n not in spec.known_columns]
    if spec.unknown_fields == "error":
        problems += [(None, name, "unknown column (not in the spec)") for name in unknown]
    if problems:
        raise InputError(source, problems[:MAX_PROBLEMS], len(problems))
    return tuple(unknown)


def _record_cells(
    spec: FeatureSpec, records: Sequence[Any], names: list[str], source: str
) -> dict[str, Cells]:
    """Records as cells, after the presence and unknown-field checks of every record."""
    problems: list[tuple[int | None, str | None, str]] = []
    total = 0
    known = spec.known_columns
    for index, record in enumerate(records):
        found: list[tuple[int | None, str | None, str]] = []
        if type(record) is not dict and not isinstance(record, Mapping):
            found.append((index, None, "expected an object (a record of fields)"))
        else:
            found += [(index, n, "field required") for n in names if n not in record]
            if spec.unknown_fields == "error":
                unknown = [n for n in record if n not in known]
                total += max(0, len(unknown) - MAX_PROBLEMS)  # a flood is counted, not listed
                found += [(index, str(n), "unknown field") for n in unknown[:MAX_PROBLEMS]]
        total += len(found)
        problems += found[: max(0, MAX_PROBLEMS - len(problems))]
    if total:
        raise InputError(source, problems, total)
    return {name: Cells.of_values([record[name] for record in records]) for name in names}


def _cells(
    spec: FeatureSpec, data: object, names: list[str], source: str, target: bool
) -> tuple[dict[str, Cells], int, tuple[str, ...]]:
    if type(data) is list or (isinstance(data, Sequence) and not isinstance(data, str | bytes)):
        return _record_cells(spec, data, names, source), len(data), ()
    kind = f"{type(data).__module__}.{type(data).__name__}"
    table: Any = data  # a pyarrow Table or a pandas DataFrame, told apart without importing them
    if kind == "pyarrow.lib.Table":
        ignored = check_names(spec, table.column_names, source, target=target)
        return {n: Cells.of_arrow(table[n]) for n in names}, table.num_rows, ignored
    if kind in {"pandas.DataFrame", "pandas.core.frame.DataFrame"}:
        ignored = check_names(spec, [str(c) for c in table.columns], source, target=target)
        return {n: Cells.of_pandas(table[n]) for n in names}, len(table), ignored
    msg = f"{source}: cannot validate a {type(data).__name__}: give records, a pyarrow Table "
    msg += "or a pandas DataFrame"
    raise TypeError(msg)


def validate(
    spec: FeatureSpec, data: object, *, target: bool = False, source: str = "input"
) -> ValidationResult:
    """Split ``data`` into :class:`ValidRows` and a report of every invalid row.

    ``data`` is a list of records (mappings of field to JSON-like value), a pyarrow Table or a
    pandas DataFrame. The features are checked, and the target with ``target=True`` (never
    null there: a row to learn from or to score against needs one); the id column and
    ``ignored_columns`` may be present and are not read. Raises :class:`InputError` (naming
    ``source``) when the whole input is unusable.
    """
    labelled = [spec.target.model_copy(update={"nullable": False})] if target else []
    columns: list[Column] = [*spec.features, *labelled]
    names = [column.name for column in columns]
    cells, n_rows, ignored = _cells(spec, data, names, source, target)
    parsed: dict[str, Values] = {}
    found: list[tuple[np.ndarray, int, str]] = []
    for order, column in enumerate(columns):
        parsed[column.name], problems = column.parse(cells[column.name])
        found += [(np.flatnonzero(rows), order, reason) for reason, rows in problems]
    report = _report(n_rows, found, names, ignored)
    if not found:  # every row valid: the columns as parsed
        valid, rows = parsed, np.arange(n_rows)
    else:
        keep = np.ones(n_rows, dtype=bool)
        keep[report.invalid_rows] = False
        rows = np.flatnonzero(keep)
        valid = {
            name: values.take(rows) if isinstance(values, Categories) else values[rows]
            for name, values in parsed.items()
        }
    return ValidationResult(ValidRows(spec.name, valid, rows, n_rows, _MADE_HERE), report)


def _report(
    n_rows: int,
    found: list[tuple[np.ndarray, int, str]],
    names: list[str],
    ignored: tuple[str, ...],
) -> ValidationReport:
    """One report from the failing rows of each check, sorted by row, then column (spec
    order), then the order of the checks."""
    if not found:
        empty = np.array([], dtype=object)
        return ValidationReport(n_rows, np.array([], dtype=np.int64), empty, empty, ignored)
    counts = [len(rows) for rows, _, _ in found]
    rows = np.concatenate([rows for rows, _, _ in found]).astype(np.int64)
    order = np.repeat([column for _, column, _ in found], counts)
    sort = np.lexsort((order, rows))  # stable: checks keep their order
    column_names = np.array(names, dtype=object)[order[sort]]
    reasons = np.repeat(np.array([reason for _, _, reason in found], dtype=object), counts)
    return ValidationReport(n_rows, rows[sort], column_names, reasons[sort], ignored)
