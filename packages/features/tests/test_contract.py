"""One input contract at every door: JSON records, Arrow tables (CSV and Parquet files) and
pandas frames get the same verdicts from :func:`features.validate`."""

import csv
import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema_rs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import (
    CategoricalColumn,
    Categories,
    Column,
    CompiledPreprocessor,
    FeatureSpec,
    InputError,
    IntegerCategoricalColumn,
    NumericColumn,
    SpecError,
    ValidRows,
    build_preprocessor,
    compile_preprocessor,
    read_table,
    record_model,
    validate,
)
from features.testing import sample_frame

DOORS = ["records", "arrow", "frame", "csv", "parquet"]

Oracle = Callable[  # the oracle fixture (conftest.py): (issues, values of the valid rows)
    [FeatureSpec, Sequence[Mapping[str, object]]], tuple[list[tuple[int, str, str]], pd.DataFrame]
]


def through(door: str, rows: list[dict[str, Any]], tmp_path: Path) -> object:
    """``rows`` as ``door`` delivers them to the validator (files: as :func:`read_table`
    reads them, every CSV cell as its text)."""
    if door == "records":
        return rows
    if door == "frame":
        return pd.DataFrame(rows)
    table = pa.Table.from_pylist(rows)
    if door == "arrow":
        return table
    path = tmp_path / f"input.{door}"
    if door == "csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pq.write_table(table, path)
    return path


def checked(spec: FeatureSpec, door: str, rows: list[dict[str, Any]], tmp_path: Path, **kw: Any):
    data = through(door, rows, tmp_path)
    if isinstance(data, Path):
        data = read_table(data, spec, target=kw.get("target", False))
    return validate(spec, data, **kw)


def with_changes(spec: FeatureSpec, **changes: Any) -> FeatureSpec:
    return FeatureSpec.from_dict({**spec.model_dump(mode="json"), **changes})


# --- integer_categorical -------------------------------------------------------------------

GRADES = FeatureSpec.from_dict(
    {
        "name": "grades",
        "task": "regression",
        "target": {"name": "y", "kind": "numeric"},
        "features": [
            {"name": "grade", "kind": "integer_categorical", "categories": [1, 2, 3]},
            {"name": "x", "kind": "numeric"},
        ],
    }
)
WHOLE = "wrong type: expected a whole number"
NOT_A_GRADE = "category not allowed (allowed: 1, 2, 3)"


def test_integer_categorical_is_a_column_kind() -> None:
    column = GRADES.features[0]
    assert isinstance(column, IntegerCategoricalColumn)
    assert column.labels == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("value", "label"), [(1, "1"), (3.0, "3"), ("2", "2"), ("2.0", "2"), ("+3", "3"), (None, None)]
)
def test_integer_categorical_accepts_whole_numbers(value: object, label: str | None) -> None:
    result = validate(GRADES, [{"grade": value, "x": 0.0}])
    assert list(result.report) == []
    grade = result.valid.columns["grade"]
    assert isinstance(grade, Categories)
    got = result.valid.frame()["grade"].iloc[0]
    assert got == label if label is not None else pd.isna(got)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (2.5, WHOLE),
        ("2.5", WHOLE),
        (True, WHOLE),
        (False, WHOLE),
        ("two", WHOLE),
        (math.inf, WHOLE),
        (math.nan, WHOLE),
        (4, NOT_A_GRADE),
        ("4", NOT_A_GRADE),
        (0, NOT_A_GRADE),
        (-1, NOT_A_GRADE),
    ],
)
def test_integer_categorical_refuses(value: object, reason: str) -> None:
    assert list(validate(GRADES, [{"grade": 1, "x": 0.0}, {"grade": value, "x": 0.0}]).report) == [
        (1, "grade", reason)
    ]


@pytest.mark.parametrize("door", DOORS)
def test_integer_categorical_at_every_door(door: str, tmp_path: Path) -> None:
    """Integers in JSON and Parquet, whole-number text in CSV (``2.0`` as pandas writes a
    float column with nulls): the same verdicts and values everywhere."""
    rows = [{"grade": g, "x": 1.0} for g in (1, 2, None, 3, 4, 2)]
    result = checked(GRADES, door, rows, tmp_path)
    assert list(result.report) == [(4, "grade", NOT_A_GRADE)]
    assert result.valid.rows.tolist() == [0, 1, 2, 3, 5]
    assert result.valid.frame()["grade"].fillna("-").tolist() == ["1", "2", "-", "3", "2"]


def test_integer_categorical_refuses_fractions_in_files(tmp_path: Path) -> None:
    path = tmp_path / "grades.csv"
    path.write_text("grade,x\n2.5,1\ntrue,1\n2,1\n")
    result = validate(GRADES, read_table(path, GRADES))
    assert list(result.report) == [(0, "grade", WHOLE), (1, "grade", WHOLE)]
    floats = pa.table({"grade": pa.array([2.5, 1.0]), "x": pa.array([1.0, 1.0])})
    assert list(validate(GRADES, floats).report) == [(0, "grade", WHOLE)]


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ([1, 1], "categories repeat a value"),
        (["a"], "Input should be a valid integer"),
        ([1.5], "Input should be a valid integer"),
        ([True], "Input should be a valid integer"),
        ([], "List should have at least 1 item"),
    ],
)
def test_integer_categorical_spec_checks(categories: list[object], message: str) -> None:
    data = GRADES.model_dump(mode="json")
    data["features"][0]["categories"] = categories
    with pytest.raises(SpecError, match=message):
        FeatureSpec.from_dict(data)


GRADE_KINDS = FeatureSpec.from_dict(
    {
        "name": "grade-kinds",
        "task": "regression",
        "target": {"name": "y", "kind": "numeric"},
        "features": [
            {"name": "grade", "kind": "integer_categorical", "categories": [1, 2, 3]},
            {
                "name": "level",
                "kind": "integer_categorical",
                "categories": [10, 20, 30],
                "encode": "ordinal",
                "allow_unknown": True,
                "impute": "constant",
                "fill_value": 20,
            },
            {
                "name": "code",
                "kind": "integer_categorical",
                "categories": [5, 6],
                "impute": "constant",
            },
        ],
    }
)


def test_integer_categorical_preprocessing_matches_scikit_learn() -> None:
    train = sample_frame(GRADE_KINDS, 300, seed=1, null_share=0.1)
    fitted = build_preprocessor(GRADE_KINDS)
    out = fitted.fit_transform(validate(GRADE_KINDS, train).valid.frame())
    assert out.columns.tolist() == [
        "grade_1",
        "grade_2",
        "grade_3",
        "level",
        "code_5",
        "code_6",
        "code_-1",  # the constant fill, a category of its own
    ]
    assert not out.isna().any().any()
    compiled = CompiledPreprocessor.from_dict(
        json.loads(json.dumps(compile_preprocessor(fitted).to_dict()))
    )
    fresh = sample_frame(GRADE_KINDS, 100, seed=2, null_share=0.2)
    fresh = fresh.astype({"level": object, "grade": object})
    fresh.loc[:4, "level"] = 40  # unseen: allowed, ordinal -1
    fresh.loc[5:9, "grade"] = "2"  # text of a category
    valid = validate(GRADE_KINDS, fresh).valid
    assert len(valid) == 100
    expected = fitted.transform(valid.frame()).to_numpy()
    got = compiled.transform(valid.columns)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert (got[:5, 3] == -1).all()
    np.testing.assert_array_equal(got[5:10, 1], 1.0)  # "2" is grade_2


# --- unknown_fields ------------------------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_unknown_column_is_an_error_by_default(
    spec: FeatureSpec, record: dict[str, object], door: str, tmp_path: Path
) -> None:
    rows = [record, {**record, "note": "x"}] if door == "records" else [{**record, "note": "x"}]
    with pytest.raises(InputError, match="'note'") as caught:
        checked(spec, door, rows, tmp_path)
    if door == "records":
        assert caught.value.problems == [(1, "note", "unknown field")]
    else:
        assert caught.value.problems == [(None, "note", "unknown column (not in the spec)")]
    assert caught.value.total == 1


@pytest.mark.parametrize("door", DOORS)
def test_unknown_column_can_be_ignored(
    spec: FeatureSpec, record: dict[str, object], door: str, tmp_path: Path
) -> None:
    lenient = with_changes(spec, unknown_fields="ignore")
    result = checked(lenient, door, [{**record, "note": "x"}], tmp_path)
    assert result.report.n_valid == 1
    assert "note" not in result.valid.columns
    assert result.report.ignored_columns == (() if door == "records" else ("note",))


def test_many_unknown_fields_are_counted(spec: FeatureSpec, record: dict[str, object]) -> None:
    flood = {**record, **{f"f{i}": i for i in range(250)}}
    with pytest.raises(InputError) as caught:
        validate(spec, [flood, flood])
    assert caught.value.total == 500
    assert len(caught.value.problems) == 100
    assert "... and 490 more" in str(caught.value)


# --- presence ------------------------------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("missing", ["sex", "island"])  # nullable, and not
def test_absent_column_is_an_error_at_every_door(
    spec: FeatureSpec, record: dict[str, object], door: str, missing: str, tmp_path: Path
) -> None:
    rows = [{k: v for k, v in record.items() if k != missing}]
    with pytest.raises(InputError, match=f"'{missing}'") as caught:
        checked(spec, door, rows, tmp_path)
    message = "field required" if door == "records" else "column missing"
    position = 0 if door == "records" else None
    assert caught.value.problems == [(position, missing, message)]


def test_absent_key_in_one_record_refuses_all(spec: FeatureSpec, record: dict[str, object]) -> None:
    partial = {k: v for k, v in record.items() if k != "sex"}
    with pytest.raises(InputError) as caught:
        validate(spec, [record, partial, record, partial])
    assert caught.value.problems == [(1, "sex", "field required"), (3, "sex", "field required")]
    assert caught.value.total == 2


@pytest.mark.parametrize("door", DOORS)
def test_target_must_be_present_when_asked(
    spec: FeatureSpec, record: dict[str, object], door: str, tmp_path: Path
) -> None:
    assert checked(spec, door, [record], tmp_path).report.n_valid == 1
    with pytest.raises(InputError, match="'species'"):
        checked(spec, door, [record], tmp_path, target=True)


def test_null_is_not_absent(spec: FeatureSpec, record: dict[str, object]) -> None:
    result = validate(spec, [{**record, "sex": None}, {**record, "island": None}])
    assert list(result.report) == [(1, "island", "null not allowed")]


# --- ignored_columns -----------------------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_ignored_columns_are_accepted_and_not_read(
    spec: FeatureSpec, record: dict[str, object], door: str, tmp_path: Path
) -> None:
    assert spec.ignored_columns == ["year"]
    assert spec.unknown_fields == "error"
    result = checked(spec, door, [{**record, "year": "not a year"}], tmp_path)
    assert result.report.n_valid == 1
    assert list(result.valid.columns) == spec.feature_names
    assert result.report.ignored_columns == ()  # declared, so not reported as unknown


def test_ignored_columns_may_be_absent(spec: FeatureSpec, record: dict[str, object]) -> None:
    assert validate(spec, pd.DataFrame([record])).report.n_valid == 1


def test_ignored_columns_are_optional_record_fields(spec: FeatureSpec) -> None:
    schema = record_model(spec).model_json_schema()
    assert "year" in schema["properties"]
    assert "year" not in schema["required"]


@pytest.mark.parametrize("name", ["island", "species"])
def test_ignored_columns_must_not_be_used(spec: FeatureSpec, name: str) -> None:
    with pytest.raises(SpecError, match=r"ignored_columns \[.*\] are also features, the target"):
        with_changes(spec, ignored_columns=["year", name])


# --- ValidRows -----------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, object()])
def test_valid_rows_are_made_only_by_validate(token: object) -> None:
    with pytest.raises(TypeError, match=r"made by features\.validate"):
        ValidRows("spec", {"x": np.zeros(1)}, np.array([0]), 1, token)


# --- the record model: its JSON schema and its validation agree with validate ---------------

RECORDS: list[tuple[str, dict[str, Any], bool]] = [
    ("valid", {}, True),
    ("numeric text", {"bill_length_mm": "46.5"}, True),
    ("integer", {"body_mass_g": 3500}, True),
    ("null number", {"bill_length_mm": None}, True),
    ("null text", {"bill_length_mm": "NA", "sex": ""}, True),
    ("open category", {"island": "Anvers"}, True),
    ("bound", {"bill_length_mm": 80}, True),
    ("above max", {"bill_length_mm": 95.0}, False),
    ("thousands", {"body_mass_g": "3,750"}, False),
    ("spaces", {"bill_length_mm": " 46.5"}, False),
    ("NaN text", {"bill_length_mm": "NaN"}, False),
    ("boolean", {"bill_length_mm": True}, False),
    ("closed category", {"sex": "unknown"}, False),
    ("case", {"sex": "Female"}, False),
    ("null, not nullable", {"island": None}, False),
    ("null text, not nullable", {"island": "NA"}, False),
    ("number for text", {"island": 3}, False),
    ("list", {"sex": ["female"]}, False),
    ("unknown field", {"note": "x"}, False),
    ("ignored field", {"year": 2007}, True),
]


@pytest.mark.parametrize(("case", "change", "ok"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_schema_and_model_agree_with_validate(
    spec: FeatureSpec, record: dict[str, object], case: str, change: dict[str, Any], ok: bool
) -> None:
    data = {**record, **change}
    Record = record_model(spec)
    schema = jsonschema_rs.validator_for(Record.model_json_schema())
    try:
        by_validate = validate(spec, [data]).report.n_valid == 1
    except InputError:
        by_validate = False
    by_model = True
    try:
        Record.model_validate(data)
    except ValueError:
        by_model = False
    assert (by_validate, by_model, schema.is_valid(data)) == (ok, ok, ok), case


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (2.0, True), ("3", True), (None, True), (2.5, False), (4, False), (True, False)],
)
def test_integer_categorical_record_schema_agrees(value: object, ok: bool) -> None:
    data = {"grade": value, "x": 1.0}
    Record = record_model(GRADES)
    schema = jsonschema_rs.validator_for(Record.model_json_schema())
    by_model = True
    try:
        Record.model_validate(data)
    except ValueError:
        by_model = False
    assert validate(GRADES, [data]).report.n_valid == ok
    assert (by_model, schema.is_valid(data)) == (ok, ok)


def test_missing_field_fails_the_schema_and_the_model(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    data = {k: v for k, v in record.items() if k != "sex"}
    assert not jsonschema_rs.validator_for(record_model(spec).model_json_schema()).is_valid(data)
    with pytest.raises(ValueError, match="sex: field required"):
        record_model(spec).model_validate(data)


# --- every kind at every door, against the oracle ------------------------------------------

EVERY_KIND = FeatureSpec.from_dict(
    {
        "name": "every-kind",
        "task": "regression",
        "target": {"name": "y", "kind": "numeric"},
        "features": [
            {"name": "size", "kind": "numeric", "min": -5.0, "max": 5.5, "nullable": False},
            {"name": "tail", "kind": "numeric", "min": 0.0},
            {"name": "cap", "kind": "numeric", "max": 100.0, "nullable": False},
            {"name": "free", "kind": "numeric"},
            {"name": "colour", "kind": "categorical", "categories": ["red", "green", "Blue"]},
            {
                "name": "site",
                "kind": "categorical",
                "categories": ["north"],
                "allow_unknown": True,
                "nullable": False,
            },
            {"name": "grade", "kind": "integer_categorical", "categories": [1, 2, 3]},
            {
                "name": "level",
                "kind": "integer_categorical",
                "categories": [10, -20],
                "allow_unknown": True,
                "nullable": False,
            },
            {"name": "flag", "kind": "boolean", "nullable": False},
            {"name": "maybe", "kind": "boolean"},
        ],
    }
)
TEXTS = [
    *["true", "FALSE", "yes", "0", "1", "2", "2.0", "+3", "-20", "10.5", "red", "north"],
    *["", "NA", "N/A", "null", "NULL", "None", "nan", "NaN", "inf", "-inf", "1e400", "-1e400"],
    *["3,750", " 1", "1 ", ".5", "5.", "-0", "1e2", "1E+2", "1e", "e1", "+-1", "\u0664"],
]


def near(column: Column) -> tuple[list[float], list[str]]:
    """Numbers and texts at the edges of a column's rules, from its declaration: its bounds,
    the floats either side and the infinities; its categories in other cases and with spaces;
    its codes, their neighbours and halves; true and false in any case."""
    if isinstance(column, NumericColumn):
        bounds = [bound for bound in (column.min, column.max) if bound is not None]
        numbers = [
            *(
                e
                for b in bounds
                for e in (b, math.nextafter(b, -math.inf), math.nextafter(b, math.inf))
            ),
            math.inf,
            -math.inf,
        ]
        return numbers, [*(repr(n) for n in numbers if math.isfinite(n)), "1e400", "-1e400"]
    if isinstance(column, CategoricalColumn):
        variants = (str.swapcase, str.upper, str.lower, str.title, " {}".format, "{} ".format)
        return [], [text for c in column.categories for text in (c, *(v(c) for v in variants))]
    if isinstance(column, IntegerCategoricalColumn):
        numbers = [float(n) for c in column.categories for n in (c, c - 1, c + 1, c + 0.5)]
        texts = [t for c in column.categories for t in (str(c), f"{c}.0", f"+{c}", f"{c}.5")]
        return numbers, texts
    return [0.0, 1.0], ["true", "false", "TRUE", "False", "tRuE", "yes", "1", "0"]


def cells(column: Column, kind: str) -> st.SearchStrategy[Any]:
    """Cells of one Arrow type for ``column``: any of that type, or near the column's rules."""
    numbers, texts = near(column)
    if kind == "float":
        extremes = [2.0**53, 2.0**53 + 2, 1e300, -0.0, math.nan]
        return st.floats() | st.sampled_from(numbers or extremes) | st.sampled_from(extremes)
    if kind == "int":
        whole = [int(n) for n in numbers if math.isfinite(n) and n == int(n)]
        return st.integers(-25, 25) | st.sampled_from(whole or [0])
    if kind == "bool":
        return st.booleans()
    return st.sampled_from(TEXTS) | st.sampled_from(texts)


@st.composite
def every_kind_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows of 1 to 12 cells per column, each column of one type (as Arrow needs) and nulls."""
    n_rows = draw(st.integers(1, 12))
    columns = {
        column.name: draw(
            st.lists(
                st.none() | cells(column, draw(st.sampled_from(["float", "int", "bool", "text"]))),
                min_size=n_rows,
                max_size=n_rows,
            )
        )
        for column in EVERY_KIND.features
    }
    return [{name: values[row] for name, values in columns.items()} for row in range(n_rows)]


def as_delivered(door: str, rows: list[dict[str, Any]], data: object) -> list[dict[str, Any]]:
    """The cells as the door holds them: a CSV file's texts (read back by the csv module), a
    frame's NaN as a null, the values themselves elsewhere (Arrow keeps a NaN a number)."""
    if door == "csv":
        assert isinstance(data, Path)
        with data.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    if door == "frame":
        return [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in rows
        ]
    return rows


@settings(max_examples=100, deadline=None)
@given(rows=every_kind_rows())
def test_every_kind_at_every_door_agrees_with_the_oracle(
    oracle: Oracle, rows: list[dict[str, Any]]
) -> None:
    """Each kind's rules (bounds, categories open and closed, whole-number codes, booleans,
    nullable or not) give the oracle's verdict, reason and value for every cell, at every
    door: JSON records, an Arrow table, a pandas frame, CSV text and typed Parquet."""
    with tempfile.TemporaryDirectory() as tmp:
        for door in DOORS:
            data = through(door, rows, Path(tmp))
            issues, values = oracle(EVERY_KIND, as_delivered(door, rows, data))
            if isinstance(data, Path):
                data = read_table(data, EVERY_KIND)
            result = validate(EVERY_KIND, data)
            assert list(result.report) == issues, (door, rows)
            pd.testing.assert_frame_equal(result.valid.frame(), values, obj=door)
