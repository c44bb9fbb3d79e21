import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pytest

from features import Column, FeatureSpec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def workspace() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    return FeatureSpec.from_toml(ROOT / "configs" / "penguins_species.features.toml")


@pytest.fixture(scope="session")
def regression_spec() -> FeatureSpec:
    return FeatureSpec.from_toml(ROOT / "configs" / "penguins_body_mass.features.toml")


@pytest.fixture
def penguins() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "penguins.csv")


@pytest.fixture
def record() -> dict[str, object]:
    return {
        "island": "Dream",
        "bill_length_mm": 46.5,
        "bill_depth_mm": 17.9,
        "flipper_length_mm": 192,
        "body_mass_g": 3500,
        "sex": "female",
    }


# --- the oracle: what the spec says each cell means, in plain Python -------------------------
#
# Written from the spec reference (docs/spec-reference.md and the column kinds' descriptions),
# not from the validator: property tests compare features.validate (at every door) and the
# record model with it. It reads only what the spec declares (kind, nullable, bounds,
# categories, allow_unknown) and judges one cell at a time, as a door delivers it: None for a
# null (a pandas door's NaN is turned into None by the test), else the value or text itself.

NULL_TEXTS = ("", "NA", "N/A", "null", "NULL")  # texts meaning "no value", at every door
DIGITS = set("0123456789")
WRONG_TYPE = {
    "numeric": "wrong type: expected a number",
    "categorical": "wrong type: expected a string",
    "integer_categorical": "wrong type: expected a whole number",
    "boolean": "wrong type: expected true or false",
}

Issue = tuple[int, str, str]
Verdict = tuple[str | None, object]  # (the reason the cell is refused, or None; its value)


def plain_number(text: str) -> float | None:
    """The value of a plain-number text: ASCII digits with one optional sign, decimal point
    and exponent (``39.5``, ``-0``, ``.5``, ``1e3``); None for anything else (``3,750``,
    `` 1``, ``NaN``, ``inf``)."""
    mantissa, has_exponent, exponent = text.replace("E", "e").partition("e")
    if mantissa[:1] in {"+", "-"}:
        mantissa = mantissa[1:]
    if exponent[:1] in {"+", "-"}:
        exponent = exponent[1:]
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    if not digits or not set(digits) <= DIGITS:
        return None
    if has_exponent and (not exponent or not set(exponent) <= DIGITS):
        return None
    return float(text)  # beyond float range: an infinity


def a_number(value: object) -> float | None:
    """A number, or number text, as a float; None for anything else (a boolean included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return plain_number(value)
    return None


def numeric(column: Column, value: object) -> Verdict:
    """A number or plain-number text, within the bounds (inclusive); an infinity is refused
    by the bound on its side, else (like NaN) as not finite."""
    number = a_number(value)
    if number is None:
        return WRONG_TYPE["numeric"], None
    if math.isnan(number):
        return "not finite", None
    if column.min is not None and number < column.min:
        return f"below minimum {column.min:g}", None
    if column.max is not None and number > column.max:
        return f"above maximum {column.max:g}", None
    return ("not finite", None) if math.isinf(number) else (None, number)


def boolean(column: Column, value: object) -> Verdict:
    """A boolean, or the text ``true`` or ``false`` in any case."""
    if isinstance(value, bool):
        return None, float(value)
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return None, 1.0 if value.lower() == "true" else 0.0
    return WRONG_TYPE["boolean"], None


def category(column: Column, label: str) -> Verdict:
    """One of the categories (as text), or any value when unknown ones are allowed."""
    known = [str(c) for c in column.categories]
    if column.allow_unknown or label in known:
        return None, label
    return f"category not allowed (allowed: {', '.join(known)})", None


def text_category(column: Column, value: object) -> Verdict:
    """Text, compared exactly (case and spaces matter)."""
    if not isinstance(value, str):
        return WRONG_TYPE["categorical"], None
    return category(column, value)


def whole_category(column: Column, value: object) -> Verdict:
    """A whole number, or its text (``2``, ``2.0``), coded as its integer; beyond 2**53, where
    floats skip integers, no number is read as a code."""
    number = a_number(value)
    if number is None or not math.isfinite(number) or number != math.floor(number):
        return WRONG_TYPE["integer_categorical"], None
    if abs(number) > 2**53:
        return WRONG_TYPE["integer_categorical"], None
    return category(column, str(int(number)))


KINDS: dict[str, Callable[[Column, object], Verdict]] = {
    "numeric": numeric,
    "boolean": boolean,
    "categorical": text_category,
    "integer_categorical": whole_category,
}


def judge(column: Column, value: object) -> Verdict:
    """What ``value`` is for ``column`` (a spec column): refused and why, or its value (float
    for numbers and booleans, text for categories, None for a null)."""
    if value is None or (isinstance(value, str) and value in NULL_TEXTS):
        return (None, None) if column.nullable else ("null not allowed", None)
    return KINDS[column.kind](column, value)


def expected(
    spec: FeatureSpec, rows: Sequence[Mapping[str, object]]
) -> tuple[list[Issue], pd.DataFrame]:
    """``(issues, values)``: every refused cell as ``(row, column, reason)``, by row and then
    column in spec order; and the values of the other rows, as ``ValidRows.frame()`` gives
    them (float64 for numbers and booleans, text for categories, NaN for null)."""
    issues: list[Issue] = []
    kept: list[int] = []
    values: dict[str, list[object]] = {column.name: [] for column in spec.features}
    for index, row in enumerate(rows):
        verdicts = [(column, *judge(column, row[column.name])) for column in spec.features]
        found = [(index, column.name, reason) for column, reason, _ in verdicts if reason]
        issues += found
        if not found:
            kept.append(index)
            for column, _, value in verdicts:
                values[column.name].append(math.nan if value is None else value)
    numeric = {"numeric", "boolean"}
    frame = pd.DataFrame(
        {
            column.name: pd.Series(
                values[column.name], dtype="float64" if column.kind in numeric else object
            )
            for column in spec.features
        }
    )
    return issues, frame.set_axis(pd.Index(kept, dtype="int64"), axis=0)


Oracle = Callable[[FeatureSpec, Sequence[Mapping[str, object]]], tuple[list[Issue], pd.DataFrame]]


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    """:func:`expected`: what the spec's rules say of each cell of some rows."""
    return expected
