import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import (
    CategoricalColumn,
    Categories,
    Column,
    FeatureSpec,
    InputError,
    NumericColumn,
    ValidationReport,
    record_model,
    repeated_columns,
    validate,
)
from features.testing import sample_frame

Oracle = Callable[  # the oracle fixture (conftest.py): (issues, values of the valid rows)
    [FeatureSpec, Sequence[Mapping[str, object]]], tuple[list[tuple[int, str, str]], pd.DataFrame]
]


def issues_of(spec: FeatureSpec, data: object, **kwargs: bool) -> list[tuple[int, str, str]]:
    return list(validate(spec, data, **kwargs).report)


def lenient(spec: FeatureSpec, **changes: object) -> FeatureSpec:
    """``spec`` with unknown columns ignored (and any other changes)."""
    return FeatureSpec.from_dict(
        {**spec.model_dump(mode="json"), "unknown_fields": "ignore", **changes}
    )


def test_penguins_table_is_valid(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    result = validate(spec, penguins, target=True)
    assert result.report.n_valid == len(penguins) == len(result.valid) == 344
    assert result.report.ignored_columns == ()  # "year" is declared in ignored_columns
    assert list(result.valid.columns) == [*spec.feature_names, "species"]
    assert result.valid.columns["bill_length_mm"].dtype == np.float64
    assert isinstance(result.valid.columns["island"], Categories)
    assert result.valid.rows.tolist() == list(range(344))


def test_regression_target_nulls_are_reported(
    regression_spec: FeatureSpec, penguins: pd.DataFrame
) -> None:
    result = validate(regression_spec, penguins, target=True)
    assert result.report.invalid_rows.tolist() == [3, 271]
    assert set(result.report.issues["reason"]) == {"null not allowed"}
    assert len(result.valid) == 342
    assert 3 not in result.valid.rows
    assert 271 not in result.valid.rows
    assert "3 rows" not in result.report.summary()
    assert "body_mass_g: null not allowed (2 rows)" in result.report.summary()


RULES = [
    ("bill_length_mm", "long", "wrong type: expected a number"),
    ("bill_length_mm", "3,750", "wrong type: expected a number"),
    ("bill_length_mm", " 39.5", "wrong type: expected a number"),
    ("bill_length_mm", "NaN", "wrong type: expected a number"),
    ("bill_length_mm", True, "wrong type: expected a number"),
    ("bill_length_mm", math.inf, "above maximum 80"),  # an infinity is beyond every bound
    ("bill_length_mm", -math.inf, "below minimum 20"),
    ("bill_length_mm", 95.0, "above maximum 80"),
    ("bill_length_mm", "95", "above maximum 80"),
    ("bill_length_mm", 5.0, "below minimum 20"),
    ("sex", "unknown", "category not allowed (allowed: female, male)"),
    ("sex", "Female", "category not allowed (allowed: female, male)"),
    ("sex", 1, "wrong type: expected a string"),
    ("island", None, "null not allowed"),
    ("island", "NA", "null not allowed"),
    ("island", "", "null not allowed"),
]


@pytest.mark.parametrize(("column", "value", "reason"), RULES)
@pytest.mark.parametrize("door", ["records", "frame"])
def test_each_rule_reports_row_column_reason(
    spec: FeatureSpec,
    record: dict[str, object],
    door: str,
    column: str,
    value: object,
    reason: str,
) -> None:
    records = [record, {**record, column: value}, record]
    data = records if door == "records" else pd.DataFrame(records)
    result = validate(spec, data)
    assert list(result.report) == [(1, column, reason)]
    assert result.valid.rows.tolist() == [0, 2]


def test_nan_is_null_in_a_frame_but_not_finite_in_records(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """pandas' NaN means null; a typed NaN in JSON records is a number that is not finite."""
    rows = [record, {**record, "island": math.nan, "bill_length_mm": math.nan}]
    assert issues_of(spec, pd.DataFrame(rows)) == [(1, "island", "null not allowed")]
    assert issues_of(spec, rows) == [
        (1, "island", "wrong type: expected a string"),
        (1, "bill_length_mm", "not finite"),
    ]


def test_numeric_text_is_parsed(spec: FeatureSpec, record: dict[str, object]) -> None:
    rows = [{**record, "bill_length_mm": text} for text in ("39.5", "+40", "4e1", ".5e2", "NA")]
    result = validate(spec, rows)
    assert list(result.report) == []
    np.testing.assert_array_equal(
        result.valid.columns["bill_length_mm"], [39.5, 40.0, 40.0, 50.0, np.nan]
    )


def test_typed_columns_are_checked_without_objects(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    frame = pd.DataFrame([record] * 3)
    frame["bill_length_mm"] = [40.0, np.nan, 200.0]  # float64 column
    frame["island"] = pd.Series(["Dream", None, "Biscoe"], dtype="string")
    assert issues_of(spec, frame) == [
        (1, "island", "null not allowed"),
        (2, "bill_length_mm", "above maximum 80"),
    ]


def test_missing_column_refuses_the_whole_input(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    frame = pd.DataFrame([record, record]).drop(columns="sex")
    with pytest.raises(InputError, match="column 'sex': column missing") as caught:
        validate(spec, frame, source="frame.csv")
    assert caught.value.problems == [(None, "sex", "column missing")]
    assert caught.value.total == 1
    assert str(caught.value).startswith("frame.csv: input refused:")


def test_a_spec_column_named_twice_refuses_the_input(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """Any kind (feature, target, id, ignored column), in a frame or a table, named with its
    count; another name repeated is an unknown column like any other (ignored here)."""
    with_id = lenient(spec, id_column="tag")
    names = [*record, "species", "tag", "year", "note"]
    for twice in ("sex", "species", "tag", "year"):
        frame = pd.DataFrame([[*record.values(), "Adelie", "t", 2007, "", "x"]])
        frame.columns = pd.Index([*names, twice])
        with pytest.raises(InputError) as caught:
            validate(with_id, frame)
        assert caught.value.problems == [(None, twice, "appears 2 times")]
    frame = pd.DataFrame([[*record.values(), "a", "b"]], columns=[*record, "note", "note"])
    assert validate(with_id, frame).report.n_invalid == 0
    assert repeated_columns(with_id, ["tag", "x", "tag", "x", "sex", "tag", "sex"]) == [
        (None, "sex", "appears 2 times"),
        (None, "tag", "appears 3 times"),
    ]


def test_wrong_dtype_column(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([record, record])
    frame["flipper_length_mm"] = pd.to_datetime(["2020-01-01", "2020-01-02"])
    assert issues_of(spec, frame) == [
        (0, "flipper_length_mm", "wrong type: expected a number"),
        (1, "flipper_length_mm", "wrong type: expected a number"),
    ]


def test_target_checked_only_when_required(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([{**record, "species": "Emperor"}])
    result = validate(spec, frame)
    assert list(result.report) == []
    assert "species" not in result.valid.columns
    assert issues_of(spec, frame, target=True) == [
        (0, "species", "category not allowed (allowed: Adelie, Chinstrap, Gentoo)")
    ]


def test_boolean_column() -> None:
    spec = flag_spec(nullable=False)
    frame = pd.DataFrame({"flag": [True, False, "yes", None, 1, "TRUE", "False"]}, dtype=object)
    result = validate(spec, frame)
    assert list(result.report) == [
        (2, "flag", "wrong type: expected true or false"),
        (3, "flag", "null not allowed"),
        (4, "flag", "wrong type: expected true or false"),
    ]
    assert result.valid.columns["flag"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert result.valid.rows.tolist() == [0, 1, 5, 6]


def test_id_column_is_accepted_and_not_read(record: dict[str, object], spec: FeatureSpec) -> None:
    with_id = lenient(spec, id_column="tag")
    frame = pd.DataFrame([{**record, "tag": "P-1", "note": "x"}])
    result = validate(with_id, frame)
    assert result.report.n_valid == 1
    assert list(result.valid.columns) == spec.feature_names  # the id is not a feature
    assert result.report.ignored_columns == ("note",)
    strict = FeatureSpec.from_dict({**spec.model_dump(mode="json"), "id_column": "tag"})
    with pytest.raises(InputError, match="'note': unknown column"):
        validate(strict, frame)


def test_reasons_by_row_joins_every_problem(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([record, {**record, "sex": "x", "bill_depth_mm": 99.0}])
    rows, reasons = validate(spec, frame).report.reasons_by_row()
    assert rows.tolist() == [1]
    assert reasons.tolist() == [
        "bill_depth_mm: above maximum 30; sex: category not allowed (allowed: female, male)"
    ]


def test_sample_frame_is_valid(spec: FeatureSpec) -> None:
    frame = sample_frame(spec, 500, seed=3)
    result = validate(spec, frame, target=True)
    assert result.report.n_invalid == 0
    assert len(result.valid) == 500


# The columnar validator (frames, object or typed, and JSON records) and the record model must
# each give the spec's verdict on every cell: the oracle's (conftest.py), not each other's.
PENGUINS = FeatureSpec.from_toml(
    Path(__file__).resolve().parents[3] / "configs" / "penguins_species.features.toml"
)
TEXTS = [
    *["Anvers", "other", "42", "", "NA", "N/A", "null", "NULL", "None", "NaN", "nan", "inf"],
    *["-inf", "1e400", "3,750", " 39.5", "39.5 ", "+40", ".5e2", "4e1", "39.", "1e", "e3"],
    *["--40", "2000", "7000.0", "4_0", "\u0664\u0660", "true", "female", "Dream"],
]
any_value = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10_000),
    st.booleans(),
    st.sampled_from(TEXTS),
)


def near(column: Column) -> st.SearchStrategy[object]:
    """Values at the edges of a column's rules, from its declaration: each bound, the floats
    either side and the infinities, as numbers and as text; each category, in other cases
    and with spaces."""
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
        return st.sampled_from(numbers) | st.sampled_from(numbers).map(repr)
    assert isinstance(column, CategoricalColumn), column.kind  # the penguins spec's kinds
    variants = (str.swapcase, str.upper, str.lower, str.title, " {}".format, "{} ".format)
    return st.sampled_from([t for c in column.categories for t in (c, *(v(c) for v in variants))])


def typed(spec: FeatureSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as readers make it where its values allow: numbers as float64 (NaN for
    null), text as pandas categoricals."""
    frame = frame.copy()
    for column in spec.features:
        values = frame[column.name].dropna()
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if column.kind == "numeric" and numbers:
            frame[column.name] = pd.to_numeric(frame[column.name]).astype("float64")
        elif column.kind == "categorical" and all(isinstance(v, str) for v in values):
            frame[column.name] = frame[column.name].astype("category")
    return frame


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {}, optional={column.name: any_value | near(column) for column in PENGUINS.features}
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_validator_and_record_model_agree_with_the_oracle(
    spec: FeatureSpec, oracle: Oracle, rows: list[dict[str, object]], as_read: bool
) -> None:
    """Every record (an absent key is a null), as a frame of object columns or typed as readers
    make them (float64, categoricals), and as JSON records: each refused cell with the oracle's
    reason, each valid row with the oracle's values. A frame's NaN is a null (pandas'
    convention); in JSON records it is a number, not finite. The record model refuses a record
    with the same reasons, and accepts the others."""
    assert spec == PENGUINS
    full = [{name: row.get(name) for name in spec.feature_names} for row in rows]
    nulls = [
        {name: None if isinstance(v, float) and math.isnan(v) else v for name, v in row.items()}
        for row in full
    ]
    issues, values = oracle(spec, nulls)
    frame = pd.DataFrame(full, columns=spec.feature_names, dtype=object)
    result = validate(spec, typed(spec, frame) if as_read else frame)
    assert list(result.report) == issues
    pd.testing.assert_frame_equal(result.valid.frame(), values)
    as_records = validate(spec, nulls)
    assert list(as_records.report) == issues
    pd.testing.assert_frame_equal(as_records.valid.frame(), values)

    issues, values = oracle(spec, full)  # NaN kept: a number
    as_json = validate(spec, full)
    assert list(as_json.report) == issues
    pd.testing.assert_frame_equal(as_json.valid.frame(), values)
    Record = record_model(spec)
    for position, row in enumerate(full):
        reasons = "; ".join(f"{c}: {r}" for at, c, r in issues if at == position)
        try:
            Record.model_validate(row)
            refused = ""
        except ValidationError as error:
            (problem,) = error.errors()
            refused = problem["msg"].removeprefix("Value error, ")
        assert refused == reasons, row


def test_pandas_categorical_input_is_checked_like_text(
    spec: FeatureSpec, penguins: pd.DataFrame
) -> None:
    """What a Parquet reader makes (Arrow dictionaries become pandas categoricals) gets the
    same verdicts, and the same values, as plain text."""
    frame = penguins.head(8).astype({"island": object, "sex": object})
    frame.loc[1, "sex"] = "x"  # not an allowed category
    frame.loc[2, "sex"] = 3  # not text
    frame.loc[3, "sex"] = None  # null (allowed)
    frame.loc[4, "island"] = "Anvers"  # unknown island: allowed by the spec
    as_text = validate(spec, frame)
    as_categories = validate(spec, frame.astype({"island": "category", "sex": "category"}))
    pd.testing.assert_frame_equal(as_categories.report.issues, as_text.report.issues)
    assert as_categories.report.invalid_rows.tolist() == [1, 2]
    assert isinstance(as_categories.valid.columns["sex"], Categories)
    pd.testing.assert_frame_equal(as_categories.valid.frame(), as_text.valid.frame())


def test_pandas_text_categoricals_stay_codes(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    """A categorical of text is read once per category: its values come out right."""
    frame = penguins.astype({"island": "category", "sex": "category"})
    valid = validate(spec, frame).valid
    sex = valid.columns["sex"]
    assert isinstance(sex, Categories)
    assert len(sex.categories) <= 2  # per category, not per row
    np.testing.assert_array_equal(
        valid.frame()["sex"].fillna("?").to_numpy(), penguins["sex"].fillna("?").to_numpy()
    )


def test_bounds_are_inclusive(spec: FeatureSpec, record: dict[str, object]) -> None:
    """``min`` and ``max`` are allowed values, as in the JSON schema (minimum/maximum)."""
    rows = [
        {**record, "bill_length_mm": 20.0, "bill_depth_mm": 30.0},
        {**record, "bill_length_mm": 80.0, "bill_depth_mm": 10.0},
    ]
    assert issues_of(spec, pd.DataFrame(rows)) == []
    assert issues_of(spec, rows) == []


def test_typed_columns_of_the_wrong_kind_are_rejected(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """A bool column is no number (although pandas calls it numeric) and a number column is
    no text: every non-null cell is rejected, not converted."""
    frame = pd.DataFrame([record] * 2)
    frame["bill_length_mm"] = pd.Series([True, False], dtype=bool)
    frame["island"] = pd.Series([1.0, np.nan])
    frame["sex"] = pd.Series([1, 2], dtype=np.int64)
    assert issues_of(spec, frame) == [  # by row, then column in spec order
        (0, "island", "wrong type: expected a string"),
        (0, "bill_length_mm", "wrong type: expected a number"),
        (0, "sex", "wrong type: expected a string"),
        (1, "island", "null not allowed"),
        (1, "bill_length_mm", "wrong type: expected a number"),
        (1, "sex", "wrong type: expected a string"),
    ]


def flag_spec(*, nullable: bool) -> FeatureSpec:
    return FeatureSpec.from_dict(
        {
            "name": "b",
            "task": "regression",
            "target": {"name": "y", "kind": "numeric"},
            "features": [{"name": "flag", "kind": "boolean", "nullable": nullable}],
        }
    )


def test_boolean_typed_columns() -> None:
    spec = flag_spec(nullable=True)
    as_bools = pd.DataFrame({"flag": pd.Series([True, False], dtype=bool)})
    result = validate(spec, as_bools)
    assert list(result.report) == []
    assert result.valid.columns["flag"].tolist() == [1.0, 0.0]
    assert result.valid.columns["flag"].dtype == np.float64
    as_numbers = pd.DataFrame({"flag": pd.Series([1.0, np.nan, 0.0])})
    assert issues_of(spec, as_numbers) == [
        (0, "flag", "wrong type: expected true or false"),
        (2, "flag", "wrong type: expected true or false"),
    ]
    assert validate(spec, as_numbers).valid.rows.tolist() == [1]


def test_boolean_nulls_stay_missing() -> None:
    """A null (None, NaN or a null text) in a nullable boolean column is missing (NaN), never
    ``false`` and never the wrong type."""
    spec = flag_spec(nullable=True)
    frame = pd.DataFrame({"flag": [True, None, False, "yes", math.nan, "NA"]}, dtype=object)
    result = validate(spec, frame)
    assert list(result.report) == [(3, "flag", "wrong type: expected true or false")]
    assert result.valid.rows.tolist() == [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(result.valid.columns["flag"], [1.0, np.nan, 0.0, np.nan, np.nan])


def test_id_column_may_be_absent(record: dict[str, object], spec: FeatureSpec) -> None:
    with_id = FeatureSpec.from_dict({**spec.model_dump(mode="json"), "id_column": "tag"})
    for data in (pd.DataFrame([record]), [record]):
        result = validate(with_id, data)
        assert result.report.n_valid == 1
        assert list(result.valid.columns) == spec.feature_names


def test_reasons_by_row_one_line_per_rejected_row(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    frame = pd.DataFrame(
        [
            record,
            {**record, "sex": "x"},
            {**record, "bill_length_mm": 1.0, "bill_depth_mm": 99.0, "island": None},
            record,
            {**record, "body_mass_g": math.inf, "flipper_length_mm": "long"},
            {**record, "island": None},
        ]
    )
    rows, reasons = validate(spec, frame).report.reasons_by_row()
    assert rows.tolist() == [1, 2, 4, 5]
    assert reasons.tolist() == [  # columns in spec order
        "sex: category not allowed (allowed: female, male)",
        "island: null not allowed; bill_length_mm: below minimum 20; "
        "bill_depth_mm: above maximum 30",
        "flipper_length_mm: wrong type: expected a number; body_mass_g: above maximum 7000",
        "island: null not allowed",
    ]


def test_reasons_by_row_of_issues_out_of_order() -> None:
    """A report built by hand (say, from chunks) need not be sorted: rows come out sorted,
    each row's problems in the order they were listed."""
    report = ValidationReport(
        10,
        np.array([7, 2, 7, 2, 9]),
        np.array(["b", "z", "a", "a", "c"], dtype=object),
        np.array(list("vwxyz"), dtype=object),
    )
    rows, reasons = report.reasons_by_row()
    assert rows.tolist() == [2, 7, 9]
    assert reasons.tolist() == ["z: w; a: y", "b: v; a: x", "c: z"]
    assert report.invalid_rows.tolist() == [2, 7, 9]
    assert (report.n_invalid, report.n_valid) == (3, 7)


def test_clean_report_keeps_its_shape(spec: FeatureSpec, record: dict[str, object]) -> None:
    """The batch scorer reads the rows and reasons of every chunk's report, clean ones too."""
    report = validate(spec, pd.DataFrame([record])).report
    assert list(report.issues.columns) == ["row", "column", "reason"]
    assert report.issues["row"].dtype == np.int64
    assert report.issues.empty
    rows, reasons = report.reasons_by_row()
    assert len(rows) == len(reasons) == 0
    assert rows.dtype == np.int64
    assert report.invalid_rows.tolist() == []
    assert list(report) == []
    assert report.summary() == "1 rows: 1 valid, 0 rejected"


def test_summary_lists_the_ten_commonest_problems(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """Most rows first, ties in column then reason order; ignored unknown columns named (not
    the ones the spec declares in ``ignored_columns``)."""
    changes = [
        *[{"bill_length_mm": 1.0}] * 3,
        *[{"body_mass_g": "heavy"}] * 2,
        *[{name: 1.0} for name in ("bill_depth_mm", "body_mass_g", "flipper_length_mm")],
        *[{name: 1e6} for name in ("bill_depth_mm", "bill_length_mm", "body_mass_g")],
        {"flipper_length_mm": 1e6},
        *[{name: "long"} for name in ("bill_depth_mm", "bill_length_mm", "flipper_length_mm")],
    ]
    rows = [record, *({**record, **change} for change in changes)]
    frame = pd.DataFrame(rows).assign(year=2008, note="")
    assert validate(lenient(spec), frame).report.summary() == "\n".join(
        [
            "16 rows: 1 valid, 15 rejected",
            "  bill_length_mm: below minimum 20 (3 rows)",
            "  body_mass_g: wrong type: expected a number (2 rows)",
            "  bill_depth_mm: above maximum 30 (1 rows)",
            "  bill_depth_mm: below minimum 10 (1 rows)",
            "  bill_depth_mm: wrong type: expected a number (1 rows)",
            "  bill_length_mm: above maximum 80 (1 rows)",
            "  bill_length_mm: wrong type: expected a number (1 rows)",
            "  body_mass_g: above maximum 7000 (1 rows)",
            "  body_mass_g: below minimum 2000 (1 rows)",
            "  flipper_length_mm: above maximum 260 (1 rows)",
            "  columns ignored: note",
        ]
    )


def test_valid_rows_frame_is_indexed_by_input_position(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    rows = [{**record, "sex": "x"}, record, {**record, "sex": None, "bill_length_mm": "41"}]
    valid = validate(spec, rows).valid
    frame = valid.frame()
    assert frame.index.tolist() == valid.rows.tolist() == [1, 2]
    assert list(frame.columns) == spec.feature_names
    assert frame["bill_length_mm"].dtype == np.float64
    assert frame["bill_length_mm"].tolist() == [46.5, 41.0]
    assert frame["sex"].dtype == object
    assert frame["sex"].iloc[0] == "female"
    assert pd.isna(frame["sex"].iloc[1])
    assert repr(valid) == "ValidRows('penguins_species': 2 of 3 rows)"


def test_not_records_is_refused(spec: FeatureSpec, record: dict[str, object]) -> None:
    with pytest.raises(InputError) as caught:
        validate(spec, [record, "not a record"])
    assert caught.value.problems == [(1, None, "expected an object (a record of fields)")]
    with pytest.raises(TypeError, match="cannot validate a dict"):
        validate(spec, record)
