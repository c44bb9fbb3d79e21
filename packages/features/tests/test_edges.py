"""Edge inputs an adversarial review found doors disagreeing on or crashing with: each must
give one clear verdict, the same at every door."""

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features import FeatureSpec, SpecError, read_table, record_model, validate

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


def test_an_integer_beyond_float_range_keeps_its_sign() -> None:
    """JSON integers too large for a float are infinities of their own sign: the positive one
    is above the maximum, the negative one (no minimum here) not finite, as their text is."""
    as_number = verdicts([{"x": -(10**400), "code": 1}, {"x": 10**400, "code": 1}])
    as_text = verdicts([{"x": "-1" + "0" * 400, "code": 1}, {"x": "1" + "0" * 400, "code": 1}])
    assert as_number == as_text == [(0, "x", "not finite"), (1, "x", "above maximum 100")]
    bounded = FeatureSpec.from_dict(
        {**SPEC, "features": [{"name": "x", "kind": "numeric", "min": -100.0}, SPEC["features"][1]]}
    )
    assert list(validate(bounded, [{"x": -(10**400), "code": 1}]).report) == [
        (0, "x", "below minimum -100")
    ]


SIGNED = FeatureSpec.from_dict(
    {
        "name": "signed",
        "task": "regression",
        "target": {"name": "y", "kind": "numeric"},
        "features": [
            {"name": "grade", "kind": "integer_categorical", "categories": [-2, -1, 1, 2]},
            {"name": "x", "kind": "numeric", "min": -50.0, "max": 50.0},
        ],
    }
)
SIGNED_ROWS = [
    {"grade": -1, "x": -7},
    {"grade": 1, "x": 7},
    {"grade": -2, "x": -50},
    {"grade": 2, "x": -51},
    {"grade": -3, "x": 3},
]


@pytest.mark.parametrize("door", ["records", "json text", "arrow", "frame", "csv"])
def test_a_negative_integer_stays_negative_at_every_door(door: str, tmp_path: Path) -> None:
    """Negative integers (JSON numbers or strings, Arrow integers, CSV text ``-7``) keep their
    sign: ``-1`` is its own category, never ``1``; ``-7`` is not ``7``; ``-51`` is below the
    minimum; ``-3`` (whose magnitude is not a category either) is not allowed."""
    data: object = SIGNED_ROWS
    if door == "json text":
        data = [{name: str(value) for name, value in row.items()} for row in SIGNED_ROWS]
    elif door == "arrow":
        data = pa.Table.from_pylist(SIGNED_ROWS)
    elif door == "frame":
        data = pd.DataFrame(SIGNED_ROWS)
    elif door == "csv":
        path = tmp_path / "signed.csv"
        path.write_text("grade,x\n" + "".join(f"{r['grade']},{r['x']}\n" for r in SIGNED_ROWS))
        data = read_table(path, SIGNED)
    result = validate(SIGNED, data)
    assert list(result.report) == [
        (3, "x", "below minimum -50"),
        (4, "grade", "category not allowed (allowed: -2, -1, 1, 2)"),
    ]
    frame = result.valid.frame()
    assert frame["grade"].tolist() == ["-1", "1", "-2"]
    assert frame["x"].tolist() == [-7.0, 7.0, -50.0]


def test_negative_text_stays_negative_beside_a_null_text() -> None:
    """Text is parsed one way when every cell of a column is a number, another when one is a
    null text (``NA``): a negative integer keeps its sign both ways."""
    rows = [{"grade": "-1", "x": "-7"}, {"grade": "2", "x": "-51"}, {"grade": "NA", "x": "NA"}]
    result = validate(SIGNED, rows)
    assert list(result.report) == [(1, "x", "below minimum -50")]
    frame = result.valid.frame()
    assert frame["grade"].fillna("-").tolist() == ["-1", "-"]
    np.testing.assert_array_equal(frame["x"], [-7.0, np.nan])


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
