import math

import pytest
from pydantic import BaseModel, ValidationError

from features import FeatureSpec, record_model


@pytest.fixture(scope="module")
def Record(spec: FeatureSpec) -> type[BaseModel]:
    return record_model(spec)


def test_valid_record(Record: type[BaseModel], record: dict[str, object]) -> None:
    parsed = Record.model_validate(record)
    assert parsed.model_dump()["flipper_length_mm"] == 192.0


def test_nullable_fields_may_be_null_or_absent(Record: type[BaseModel]) -> None:
    parsed = Record.model_validate({"island": "Biscoe", "sex": None})
    assert parsed.model_dump()["bill_length_mm"] is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bill_length_mm", "46.5", "Input should be a valid number"),
        ("bill_length_mm", True, "Input should be a valid number"),
        ("bill_length_mm", math.nan, "Input should be a finite number"),
        ("bill_length_mm", math.inf, "Input should be a finite number"),
        ("bill_length_mm", 95.0, "Input should be less than or equal to 80"),
        ("bill_length_mm", 5.0, "Input should be greater than or equal to 20"),
        ("sex", "unknown", "Input should be 'female' or 'male'"),
        ("island", None, "Input should be a valid string"),
        ("island", 3, "Input should be a valid string"),
    ],
)
def test_each_rule_rejects(
    Record: type[BaseModel], record: dict[str, object], field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Record.model_validate({**record, field: value})
    errors = caught.value.errors()
    assert {e["loc"][0] for e in errors} == {field}
    assert any(message in e["msg"] for e in errors)


def test_required_field_missing(Record: type[BaseModel], record: dict[str, object]) -> None:
    del record["island"]
    with pytest.raises(ValidationError, match="island\n  Field required"):
        Record.model_validate(record)


def test_unknown_field_is_refused_by_default(
    Record: type[BaseModel], record: dict[str, object]
) -> None:
    with pytest.raises(ValidationError, match="bill_lenght_mm\n  Extra inputs are not permitted"):
        Record.model_validate({**record, "bill_lenght_mm": 40.0})


def test_unknown_field_can_be_ignored(spec: FeatureSpec, record: dict[str, object]) -> None:
    lenient = record_model(spec, extra="ignore")
    assert "note" not in lenient.model_validate({**record, "note": "x"}).model_dump()


def test_open_categories_accept_any_string(
    Record: type[BaseModel], record: dict[str, object]
) -> None:
    assert Record.model_validate({**record, "island": "Anvers"}).model_dump()["island"] == "Anvers"


def test_schema_documents_constraints(Record: type[BaseModel]) -> None:
    schema = Record.model_json_schema()
    assert schema["required"] == ["island"]
    bill = schema["properties"]["bill_length_mm"]["anyOf"][0]
    assert (bill["minimum"], bill["maximum"]) == (20.0, 80.0)
    assert schema["properties"]["sex"]["anyOf"][0]["enum"] == ["female", "male"]
    assert schema["additionalProperties"] is False
