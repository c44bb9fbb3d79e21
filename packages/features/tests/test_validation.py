import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import FeatureSpec, ValidationReport, record_model, validate_frame
from features.testing import sample_frame


def issues_of(spec: FeatureSpec, frame: pd.DataFrame, **kwargs: bool) -> list[tuple[int, str, str]]:
    report = validate_frame(spec, frame, **kwargs).report
    return list(report.issues.itertuples(index=False, name=None))


def test_penguins_table_is_valid(spec: FeatureSpec, penguins: pd.DataFrame) -> None:
    result = validate_frame(spec, penguins, require_target=True)
    assert result.report.n_valid == len(penguins) == 344
    assert result.report.extra_columns == ("year",)
    assert list(result.valid.columns) == [*spec.feature_names, "species"]
    assert result.valid["bill_length_mm"].dtype == np.float64


def test_regression_target_nulls_are_reported(
    regression_spec: FeatureSpec, penguins: pd.DataFrame
) -> None:
    result = validate_frame(regression_spec, penguins, require_target=True)
    assert result.report.invalid_rows.tolist() == [3, 271]
    assert set(result.report.issues["reason"]) == {"null not allowed"}
    assert len(result.valid) == 342
    assert "3 rows" not in result.report.summary()
    assert "body_mass_g: null not allowed (2 rows)" in result.report.summary()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("bill_length_mm", "long", "wrong type: expected a number"),
        ("bill_length_mm", True, "wrong type: expected a number"),
        ("bill_length_mm", math.inf, "not finite"),
        ("bill_length_mm", -math.inf, "not finite"),
        ("bill_length_mm", 95.0, "above maximum 80"),
        ("bill_length_mm", 5.0, "below minimum 20"),
        ("sex", "unknown", "category not allowed (allowed: female, male)"),
        ("sex", 1, "wrong type: expected a string"),
        ("island", None, "null not allowed"),
        ("island", math.nan, "null not allowed"),
    ],
)
def test_each_rule_reports_row_column_reason(
    spec: FeatureSpec, record: dict[str, object], column: str, value: object, reason: str
) -> None:
    frame = pd.DataFrame([record, {**record, column: value}, record])
    result = validate_frame(spec, frame)
    assert issues_of(spec, frame) == [(1, column, reason)]
    assert result.valid.index.tolist() == [0, 2]


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


def test_missing_column_rejects_every_row(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([record, record]).drop(columns="sex")
    result = validate_frame(spec, frame)
    assert result.report.missing_columns == ("sex",)
    assert issues_of(spec, frame) == [(0, "sex", "missing column"), (1, "sex", "missing column")]
    assert result.valid.empty


def test_wrong_dtype_column(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([record, record])
    frame["flipper_length_mm"] = pd.to_datetime(["2020-01-01", "2020-01-02"])
    assert {r for _, _, r in issues_of(spec, frame)} == {"wrong type: expected a number"}


def test_target_checked_only_when_required(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([{**record, "species": "Emperor"}])
    assert issues_of(spec, frame) == []
    assert issues_of(spec, frame, require_target=True) == [
        (0, "species", "category not allowed (allowed: Adelie, Chinstrap, Gentoo)")
    ]


def test_boolean_column() -> None:
    spec = FeatureSpec.from_dict(
        {
            "name": "b",
            "task": "regression",
            "target": {"name": "y", "kind": "numeric"},
            "features": [{"name": "flag", "kind": "boolean", "nullable": False}],
        }
    )
    frame = pd.DataFrame({"flag": [True, False, "yes", None, 1]}, dtype=object)
    result = validate_frame(spec, frame)
    assert issues_of(spec, frame) == [
        (2, "flag", "wrong type: expected true or false"),
        (3, "flag", "null not allowed"),
        (4, "flag", "wrong type: expected true or false"),
    ]
    assert result.valid["flag"].tolist() == [1.0, 0.0]


def test_id_column_is_carried_and_extra_reported(
    record: dict[str, object], spec: FeatureSpec
) -> None:
    with_id = FeatureSpec.from_dict({**spec.model_dump(mode="json"), "id_column": "tag"})
    frame = pd.DataFrame([{**record, "tag": "P-1", "note": "x"}])
    result = validate_frame(with_id, frame)
    assert result.valid["tag"].tolist() == ["P-1"]
    assert result.report.extra_columns == ("note",)


def test_reasons_by_row_joins_every_problem(spec: FeatureSpec, record: dict[str, object]) -> None:
    frame = pd.DataFrame([record, {**record, "sex": "x", "bill_depth_mm": 99.0}])
    reasons = validate_frame(spec, frame).report.reasons_by_row()
    assert reasons["row"].tolist() == [1]
    assert reasons["reasons"].tolist() == [
        "bill_depth_mm: above maximum 30; sex: category not allowed (allowed: female, male)"
    ]


def test_sample_frame_is_valid(spec: FeatureSpec) -> None:
    frame = sample_frame(spec, 500, seed=3)
    assert validate_frame(spec, frame, require_target=True).report.n_invalid == 0


# The columnar validator and the record model must agree on every record.
values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10_000),
    st.booleans(),
    st.sampled_from(["Dream", "Biscoe", "Anvers", "female", "male", "other", "", "42"]),
)


def typed(spec: FeatureSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the readers make it where its values allow: numbers as float64 (NaN for
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
            {},
            optional=dict.fromkeys(
                [
                    "island",
                    "bill_length_mm",
                    "bill_depth_mm",
                    "flipper_length_mm",
                    "body_mass_g",
                    "sex",
                ],
                values,
            ),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_validator_agrees_with_record_model(
    spec: FeatureSpec, rows: list[dict[str, object]], as_read: bool
) -> None:
    """Every record, NaN included (in a frame NaN is a null: the reference gets None), as
    object columns or typed as the readers make them (float64, categoricals)."""
    Record = record_model(spec)
    frame = pd.DataFrame(rows, columns=spec.feature_names, dtype=object)
    frame = typed(spec, frame) if as_read else frame
    invalid = set(validate_frame(spec, frame).report.invalid_rows.tolist())
    for position, row in enumerate(rows):
        full = {
            name: None if isinstance(v, float) and math.isnan(v) else v
            for name, v in ((name, row.get(name)) for name in spec.feature_names)
        }
        try:
            Record.model_validate(full)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (position not in invalid), (row, accepted)


def test_pandas_categorical_input_is_checked_like_text(
    spec: FeatureSpec, penguins: pd.DataFrame
) -> None:
    """What the batch scorer reads (Arrow dictionaries become pandas categoricals) gets the
    same verdicts as plain text, and stays categorical."""
    frame = penguins.head(8).astype({"island": object, "sex": object})
    frame.loc[1, "sex"] = "x"  # not an allowed category
    frame.loc[2, "sex"] = 3  # not text
    frame.loc[3, "sex"] = None  # null (allowed)
    frame.loc[4, "island"] = "Anvers"  # unknown island: allowed by the spec
    as_text = validate_frame(spec, frame)
    as_categories = validate_frame(spec, frame.astype({"island": "category", "sex": "category"}))
    pd.testing.assert_frame_equal(as_categories.report.issues, as_text.report.issues)
    assert as_categories.report.invalid_rows.tolist() == [1, 2]
    assert isinstance(as_categories.valid["sex"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(
        as_categories.valid.astype({"island": object, "sex": object}), as_text.valid
    )


def test_bounds_are_inclusive(spec: FeatureSpec, record: dict[str, object]) -> None:
    """``min`` and ``max`` are allowed values, as in the record model (``ge``/``le``)."""
    frame = pd.DataFrame(
        [
            {**record, "bill_length_mm": 20.0, "bill_depth_mm": 30.0},
            {**record, "bill_length_mm": 80.0, "bill_depth_mm": 10.0},
        ]
    )
    assert issues_of(spec, frame) == []


def test_typed_columns_of_the_wrong_kind_are_rejected(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """A bool column is no number (although pandas calls it numeric) and a number column is
    no text: every non-null cell is rejected, not converted."""
    frame = pd.DataFrame([record] * 2)
    frame["bill_length_mm"] = pd.Series([True, False], dtype=bool)
    frame["island"] = pd.Series([1.0, np.nan])
    frame["sex"] = pd.Series([1, 2], dtype=np.int64)
    assert issues_of(spec, frame) == [
        (0, "bill_length_mm", "wrong type: expected a number"),
        (0, "island", "wrong type: expected a string"),
        (0, "sex", "wrong type: expected a string"),
        (1, "bill_length_mm", "wrong type: expected a number"),
        (1, "island", "null not allowed"),
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
    result = validate_frame(spec, as_bools)
    assert issues_of(spec, as_bools) == []
    assert result.valid["flag"].tolist() == [1.0, 0.0]
    assert result.valid["flag"].dtype == np.float64
    as_numbers = pd.DataFrame({"flag": pd.Series([1.0, np.nan, 0.0])})
    assert issues_of(spec, as_numbers) == [
        (0, "flag", "wrong type: expected true or false"),
        (2, "flag", "wrong type: expected true or false"),
    ]
    assert validate_frame(spec, as_numbers).valid.index.tolist() == [1]


def test_boolean_nulls_stay_missing() -> None:
    """A null (None or NaN) in a nullable boolean column is missing (NaN), never ``false``
    and never the wrong type."""
    spec = flag_spec(nullable=True)
    frame = pd.DataFrame({"flag": [True, None, False, "yes", math.nan]}, dtype=object)
    result = validate_frame(spec, frame)
    assert issues_of(spec, frame) == [(3, "flag", "wrong type: expected true or false")]
    assert result.valid.index.tolist() == [0, 1, 2, 4]
    np.testing.assert_array_equal(result.valid["flag"], [1.0, np.nan, 0.0, np.nan])


def test_id_column_may_be_absent(record: dict[str, object], spec: FeatureSpec) -> None:
    with_id = FeatureSpec.from_dict({**spec.model_dump(mode="json"), "id_column": "tag"})
    result = validate_frame(with_id, pd.DataFrame([record]))
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
    reasons = validate_frame(spec, frame).report.reasons_by_row()
    assert reasons["row"].tolist() == [1, 2, 4, 5]
    assert reasons["reasons"].tolist() == [
        "sex: category not allowed (allowed: female, male)",
        "bill_depth_mm: above maximum 30; bill_length_mm: below minimum 20; "
        "island: null not allowed",
        "body_mass_g: not finite; flipper_length_mm: wrong type: expected a number",
        "island: null not allowed",
    ]


def test_reasons_by_row_of_issues_out_of_order() -> None:
    """A report built by hand (say, from chunks) need not be sorted: rows come out sorted,
    each row's problems in the order they were listed."""
    issues = pd.DataFrame(
        {"row": [7, 2, 7, 2, 9], "column": ["b", "z", "a", "a", "c"], "reason": list("vwxyz")}
    )
    reasons = ValidationReport(10, issues).reasons_by_row()
    assert reasons["row"].tolist() == [2, 7, 9]
    assert reasons["reasons"].tolist() == ["z: w; a: y", "b: v; a: x", "c: z"]


def test_clean_report_frames_keep_their_columns(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """The batch scorer reads ``row`` of every chunk's report, clean ones included."""
    report = validate_frame(spec, pd.DataFrame([record])).report
    assert list(report.issues.columns) == ["row", "column", "reason"]
    assert report.issues["row"].dtype == np.int64
    reasons = report.reasons_by_row()
    assert list(reasons.columns) == ["row", "reasons"]
    assert reasons.empty
    assert reasons["row"].dtype == np.int64
    assert report.summary() == "1 rows: 1 valid, 0 rejected"


def test_summary_lists_the_ten_commonest_problems(
    spec: FeatureSpec, record: dict[str, object]
) -> None:
    """Most rows first, ties in column then reason order; extra columns named."""
    changes = [
        *[{"bill_length_mm": 1.0}] * 3,
        *[{"body_mass_g": math.inf}] * 2,
        *[{name: 1.0} for name in ("bill_depth_mm", "body_mass_g", "flipper_length_mm")],
        *[{name: 1e6} for name in ("bill_depth_mm", "bill_length_mm", "body_mass_g")],
        {"flipper_length_mm": 1e6},
        *[{name: math.inf} for name in ("bill_depth_mm", "bill_length_mm", "flipper_length_mm")],
    ]
    rows = [record, *({**record, **change} for change in changes)]
    frame = pd.DataFrame(rows).assign(year=2008, note="")
    assert validate_frame(spec, frame).report.summary() == "\n".join(
        [
            "16 rows: 1 valid, 15 rejected",
            "  bill_length_mm: below minimum 20 (3 rows)",
            "  body_mass_g: not finite (2 rows)",
            "  bill_depth_mm: above maximum 30 (1 rows)",
            "  bill_depth_mm: below minimum 10 (1 rows)",
            "  bill_depth_mm: not finite (1 rows)",
            "  bill_length_mm: above maximum 80 (1 rows)",
            "  bill_length_mm: not finite (1 rows)",
            "  body_mass_g: above maximum 7000 (1 rows)",
            "  body_mass_g: below minimum 2000 (1 rows)",
            "  flipper_length_mm: above maximum 260 (1 rows)",
            "  extra columns ignored: year, note",
        ]
    )
