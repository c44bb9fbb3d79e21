import math

import pytest
from pydantic import BaseModel, ValidationError

from features import FeatureSpec, edge_records, record_model, validate


@pytest.fixture(scope="module")
def Record(spec: FeatureSpec) -> type[BaseModel]:
    return record_model(spec)


def refusal(Record: type[BaseModel], data: object) -> str:
    """The message of the one error validating ``data`` raises."""
    with pytest.raises(ValidationError) as caught:
        Record.model_validate(data)
    (error,) = caught.value.errors()
    return error["msg"]


def test_valid_record(Record: type[BaseModel], record: dict[str, object]) -> None:
    parsed = Record.model_validate(record)
    assert parsed.model_dump()["flipper_length_mm"] == 192
    assert {k: v for k, v in parsed.model_dump().items() if k in record} == record


def test_nullable_fields_may_be_null_not_absent(
    Record: type[BaseModel], record: dict[str, object]
) -> None:
    parsed = Record.model_validate({**record, "sex": None, "bill_length_mm": None})
    assert parsed.model_dump()["bill_length_mm"] is None
    absent = {k: v for k, v in record.items() if k != "bill_length_mm"}
    assert refusal(Record, absent) == "Value error, bill_length_mm: field required"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bill_length_mm", "long", "wrong type: expected a number"),
        ("bill_length_mm", True, "wrong type: expected a number"),
        ("bill_length_mm", math.nan, "not finite"),
        ("bill_length_mm", math.inf, "above maximum 80"),
        ("bill_length_mm", 95.0, "above maximum 80"),
        ("bill_length_mm", "95", "above maximum 80"),
        ("bill_length_mm", 5.0, "below minimum 20"),
        ("sex", "unknown", "category not allowed (allowed: female, male)"),
        ("island", None, "null not allowed"),
        ("island", "NA", "null not allowed"),
        ("island", 3, "wrong type: expected a string"),
    ],
)
def test_each_rule_rejects(
    Record: type[BaseModel], record: dict[str, object], field: str, value: object, message: str
) -> None:
    assert refusal(Record, {**record, field: value}) == f"Value error, {field}: {message}"


def test_numeric_text_is_accepted(Record: type[BaseModel], record: dict[str, object]) -> None:
    assert Record.model_validate({**record, "bill_length_mm": "46.5"})


def test_required_field_missing(Record: type[BaseModel], record: dict[str, object]) -> None:
    del record["island"]
    assert refusal(Record, record) == "Value error, island: field required"


def test_not_an_object(Record: type[BaseModel]) -> None:
    assert refusal(Record, ["Dream"]) == "Value error, expected an object (a record of fields)"


def test_unknown_field_is_refused_by_default(
    Record: type[BaseModel], record: dict[str, object]
) -> None:
    message = refusal(Record, {**record, "bill_lenght_mm": 40.0})
    assert message == "Value error, bill_lenght_mm: unknown field"


def test_declared_optional_fields_are_accepted(
    Record: type[BaseModel], record: dict[str, object]
) -> None:
    """The target and ``ignored_columns`` may be sent, and are not checked."""
    parsed = Record.model_validate({**record, "year": 2007, "species": "Emperor"})
    assert parsed.model_dump()["year"] == 2007


def test_unknown_field_can_be_ignored(spec: FeatureSpec, record: dict[str, object]) -> None:
    lenient = FeatureSpec.from_dict({**spec.model_dump(mode="json"), "unknown_fields": "ignore"})
    Lenient = record_model(lenient)
    assert "note" not in Lenient.model_validate({**record, "note": "x"}).model_dump()
    assert Lenient.model_json_schema().get("additionalProperties", True) is not False
    with pytest.raises(ValidationError, match="sex: category not allowed"):
        Lenient.model_validate({**record, "note": "x", "sex": "?"})


def test_open_categories_accept_any_string(
    Record: type[BaseModel], record: dict[str, object]
) -> None:
    assert Record.model_validate({**record, "island": "Anvers"}).model_dump()["island"] == "Anvers"


def test_schema_documents_constraints(spec: FeatureSpec, Record: type[BaseModel]) -> None:
    schema = Record.model_json_schema()
    assert schema["required"] == spec.feature_names  # every feature key, null or not
    assert set(schema["properties"]) == {*spec.feature_names, "species", "year"}
    bill = schema["properties"]["bill_length_mm"]["anyOf"][0]
    assert (bill["type"], bill["minimum"], bill["maximum"]) == ("number", 20.0, 80.0)
    assert {"type": "null"} in schema["properties"]["bill_length_mm"]["anyOf"]
    assert schema["properties"]["sex"]["anyOf"][0]["enum"] == ["female", "male"]
    island = schema["properties"]["island"]  # open categories, not nullable
    assert island["type"] == "string"
    assert "anyOf" not in island
    assert schema["properties"]["bill_length_mm"]["description"] == "Culmen length in millimetres."
    assert schema["additionalProperties"] is False


def test_edge_records_are_valid(spec: FeatureSpec, Record: type[BaseModel]) -> None:
    records = edge_records(spec)
    assert records[0] == {column.name: column.sample() for column in spec.features}
    assert all(set(r) == set(spec.feature_names) for r in records)
    assert {**records[0], "island": "\x00unseen"} in records  # an open category, unseen
    assert {**records[0], "sex": None} in records
    nullable = [c.name for c in spec.features if c.nullable]
    assert records[-1] == {**records[0], **dict.fromkeys(nullable, None)}
    assert validate(spec, records).report.n_invalid == 0
    for record in records:
        Record.model_validate(record)
