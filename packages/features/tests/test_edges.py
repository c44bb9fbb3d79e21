"""Edge inputs an adversarial review found doors disagreeing on or crashing with: each must
give one clear verdict, the same at every door."""

from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest

from features import FeatureSpec, SpecError, record_model, validate

SPEC = {
    "name": "edges",
    "task": "regression",
    "target": {"name": "y", "kind": "numeric"},
    "features": [
        {"name": "x", "kind": "numeric", "max": 100.0},
        {"name": "code", "kind": "integer_categorical", "categories": [1, 2, 2**53 - 1]},
    ],
}


def spec(**changes: object) -> FeatureSpec:
    return FeatureSpec.from_dict({**SPEC, **changes})


def verdicts(data: object) -> list[tuple[int, str, str]]:
    return list(validate(spec(), data).report)


def test_a_lone_surrogate_is_a_wrong_type_not_a_crash() -> None:
    records = [{"x": "\ud800", "code": "\udfff"}]
    assert verdicts(records) == [
        (0, "x", "wrong type: expected a number"),
        (0, "code", "wrong type: expected a whole number"),
    ]


def test_integers_beyond_float_precision_read_alike_at_every_door() -> None:
    big = 2**53 + 1
    records = [{"x": big, "code": 1}, {"x": 5, "code": big}]
    arrow = pa.table({"x": pa.array([big, 5], pa.int64()), "code": pa.array([1, big])})
    frame = pd.DataFrame({"x": [big, 5], "code": [1, big]})
    expected = [
        (0, "x", "above maximum 100"),
        (1, "code", "category not allowed (allowed: 1, 2, 9007199254740991)"),  # never 2**53
    ]
    assert verdicts(records) == verdicts(arrow) == verdicts(frame) == expected
    unsigned = pa.table({"x": pa.array([2**64 - 1], pa.uint64()), "code": pa.array([1])})
    assert verdicts(unsigned) == [(0, "x", "above maximum 100")]


def test_an_infinity_gets_the_same_reason_as_number_and_as_text() -> None:
    as_number = verdicts([{"x": float("inf"), "code": 1}, {"x": float("nan"), "code": 1}])
    as_text = verdicts([{"x": "1e400", "code": 1}])
    assert as_number == [(0, "x", "above maximum 100"), (1, "x", "not finite")]
    assert as_text == [(0, "x", "above maximum 100")]
    unbounded = FeatureSpec.from_dict(
        {**SPEC, "features": [{"name": "x", "kind": "numeric"}, SPEC["features"][1]]}
    )
    assert list(validate(unbounded, [{"x": "1e400", "code": 1}]).report) == [(0, "x", "not finite")]


def test_decimals_are_numbers_in_records_frames_and_arrow() -> None:
    records = [{"x": Decimal("1.5"), "code": Decimal(2)}, {"x": Decimal("NaN"), "code": 1}]
    frame = pd.DataFrame(records, dtype=object)
    arrow = pa.table(
        {"x": pa.array([Decimal("1.5"), None], pa.decimal128(5, 2)), "code": pa.array([2, 1])}
    )
    assert verdicts(records) == [(1, "x", "not finite")]
    assert verdicts(frame) == verdicts(arrow) == []  # a NaN in a frame is pandas' null
    for data in (records, frame, arrow):
        assert validate(spec(), data).valid.frame().loc[0, "x"] == 1.5


@pytest.mark.parametrize("name", ["row", "reasons", "prediction", "model_version", "probability_a"])
def test_a_column_may_not_take_a_name_scoring_writes(name: str) -> None:
    for changes in (
        {"features": [{"name": name, "kind": "numeric"}]},
        {"id_column": name},
        {"ignored_columns": [name]},
    ):
        with pytest.raises(SpecError, match=f"{name}: scoring writes columns of these names"):
            spec(**changes)


def test_open_integer_categories_document_integers() -> None:
    open_codes = spec(
        features=[
            {
                "name": "code",
                "kind": "integer_categorical",
                "categories": [1, 2],
                "allow_unknown": True,
            }
        ]
    )
    schema = record_model(open_codes).model_json_schema()["properties"]["code"]
    branches = [b.get("type") for b in schema["anyOf"]]
    assert "integer" in branches
    assert "string" in branches
    assert list(validate(open_codes, [{"code": 7}, {"code": "abc"}]).report) == [
        (1, "code", "wrong type: expected a whole number")
    ]


def test_integer_categories_stay_within_exact_floats() -> None:
    with pytest.raises(SpecError, match="categories"):
        spec(features=[{"name": "code", "kind": "integer_categorical", "categories": [2**53]}])
