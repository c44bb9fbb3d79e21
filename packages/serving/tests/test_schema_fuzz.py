"""Schemathesis generates requests from the app's own OpenAPI schema, valid (positive mode) and
not (negative mode), for every operation: no answer may be a server error or break the
documented schema, valid data must be accepted, invalid data refused, and every error answer
must have the service's error shape."""

import re
from collections import Counter

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from model import Artifact
from serving.app import create_app
from serving.schemas import MAX_ERROR_ITEMS
from serving.settings import Settings

from .conftest import RECORD

V2_MODEL = ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]
OPERATIONS = sorted(
    [
        "GET /health",
        "GET /metrics",
        "GET /ready",
        "GET /v1/metadata",
        "POST /v1/predict",
        "POST /invocations",
        "GET /ping",
        "GET /version",
        "GET /v2",
        "GET /v2/health/live",
        "GET /v2/health/ready",
        *(f"GET {model}{tail}" for model in V2_MODEL for tail in ("", "/ready")),
        *(f"POST {model}/infer" for model in V2_MODEL),
    ]
)
PROTOCOL_BODIES = {"POST /invocations", *(f"POST {model}/infer" for model in V2_MODEL)}
"""Operations whose JSON Schema cannot say everything a valid body needs (a tensor's data
matching its shape and datatype, a split frame's rows matching its columns): random valid
bodies may be refused (never with a 5xx); their documented example must be predicted."""

# Invalid input is answered 400 (malformed JSON), 405 (a method the path does not take), 413 (more
# records than the schema's maxItems: documented as "too many records", not schemathesis' default
# 422), 415 (not JSON) or 422 (invalid records); anything else for negative data is a failure.
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415, 422]}}}
)


@pytest.fixture(scope="module")
def api(artifact: Artifact) -> schemathesis.BaseSchema:
    app = create_app(Settings(max_records=20), artifact)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


def operation_of(api: schemathesis.BaseSchema, label: str) -> schemathesis.APIOperation:
    method, path = label.split(" ")
    return api[path][method]


def takes_input(operation: schemathesis.APIOperation) -> bool:
    """Whether the operation declares anything a request could get wrong (parameters, body)."""
    parts = (operation.path_parameters, operation.query, operation.headers, operation.cookies)
    return any(list(part) for part in parts) or bool(list(operation.body))


def assert_protocol_error_shape(label: str, response: schemathesis.Response) -> None:
    """MLflow's error shape on /invocations (415: text/plain, as MLflow), the Open Inference
    Protocol's ``{"error": ...}`` on /v2, the service's own elsewhere."""
    if response.status_code == 405:  # no route for the method: the service's shape
        assert_error_shape(response)
    elif label == "POST /invocations":
        if response.status_code == 415:
            assert response.headers["content-type"][0].startswith("text/plain")
        else:
            assert set(response.json()) == {"error_code", "message"}, response.text
    elif " /v2" in label:
        body = response.json()
        assert set(body) in ({"error"}, {"ready"}, {"name", "ready"}), body
    else:
        assert_error_shape(response)


def assert_error_shape(response: schemathesis.Response) -> None:
    """The documented error body: ``error``, ``detail`` (at most 100 items) and ``total``."""
    assert response.headers.get("content-type") == ["application/json"], response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error", "detail", "total"}, body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    assert isinstance(body["detail"], list), body
    assert len(body["detail"]) <= MAX_ERROR_ITEMS, len(body["detail"])
    assert isinstance(body["total"], int), body
    assert not isinstance(body["total"], bool), body
    assert body["total"] >= len(body["detail"]), body
    for item in body["detail"]:
        assert isinstance(item, dict), item
        assert set(item) <= {"record", "field", "message"}, item
        assert isinstance(item["message"], str), item
        assert item.get("record") is None or type(item["record"]) is int, item
        assert item.get("field") is None or isinstance(item["field"], str), item


BOUNDS = re.compile(r"(below minimum|above maximum) -?[0-9.e+-]+")


def only_text_bounds(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """Whether a valid request's refusal is the one thing its schema cannot say: the bounds
    of a number sent as text (JSON Schema puts ``minimum``/``maximum`` on numbers only, and a
    string only matches ``PLAIN_NUMBER``). True only when it is a 422 whose every item is a
    bound, on a field whose value in the request is a string."""
    if response.status_code != 422 or not isinstance(case.body, dict):
        return False
    records = case.body.get("records")
    detail = response.json()["detail"]
    return bool(detail) and all(
        BOUNDS.fullmatch(item["message"])
        and isinstance(item.get("record"), int)
        and isinstance(records[item["record"]].get(item.get("field")), str)
        for item in detail
    )


def test_text_bounds_are_the_only_excused_refusal(api: schemathesis.BaseSchema) -> None:
    """The excuse above is narrow: a bound on a number (not text), or another reason on
    text, is not excused."""
    operation = operation_of(api, "POST /v1/predict")
    record = dict(RECORD)
    results = {}
    for name, value in [("text", "95"), ("number", 95), ("bad text", "9 5")]:
        case = operation.Case(
            body={"records": [record, {**record, "bill_length_mm": value}]},
            media_type="application/json",
        )
        response = case.call()
        assert response.status_code == 422, response.text
        results[name] = only_text_bounds(case, response)
    assert results == {"text": True, "number": False, "bad text": False}


def test_every_operation_is_fuzzed(api: schemathesis.BaseSchema) -> None:
    assert sorted(result.ok().label for result in api.get_all_operations()) == OPERATIONS


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_operation(api: schemathesis.BaseSchema, label: str, mode: GenerationMode) -> None:
    operation = operation_of(api, label)
    statuses: Counter[int] = Counter()

    def check(case: schemathesis.Case) -> None:
        # The default checks: not_a_server_error, status code, content type, headers and body
        # conformance to the documented responses, negative_data_rejection and
        # unsupported_method (405 with Allow) for invalid data. Valid data is checked below
        # instead of by positive_data_acceptance, stricter (200 exactly) but for the one
        # refusal a JSON Schema cannot describe (see only_text_bounds).
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        statuses[response.status_code] += 1
        if response.status_code >= 400:
            assert_protocol_error_shape(label, response)
        if mode is GenerationMode.POSITIVE and label not in PROTOCOL_BODIES:
            assert response.status_code == 200 or only_text_bounds(case, response), (
                case.body,
                response.text,
            )

    # Schemathesis' coverage phase first: each schema boundary once (minimum and maximum
    # records, each category, null, a missing or wrongly typed field, a wrong content type, an
    # undeclared method...), deterministically.
    coverage = api.config.generation_for(operation=operation, phase="coverage")
    for case in api.iter_coverage_cases(
        operation, generation_modes=[mode], generation_config=coverage
    ):
        check(case)

    # Then random requests. An operation that takes no input has nothing to negate: schemathesis
    # generates no negative case for it (the strategy is unsatisfiable), and skips it the same way
    # in its own runner; its negative requests are the coverage phase's undeclared methods.
    if mode is GenerationMode.POSITIVE or takes_input(operation):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=100, deadline=None)  # no deadline: the machine is shared
        def fuzz(case: schemathesis.Case) -> None:
            check(case)

        fuzz()

    # Not vacuous: requests were sent, valid ones predicted, invalid ones refused. Random valid
    # bodies may all hold an out-of-range number as text (excused above), so the documented
    # example is sent too: it must be predicted.
    if mode is GenerationMode.POSITIVE:
        if label == "POST /v1/predict" or label in PROTOCOL_BODIES:
            content = operation.definition.raw["requestBody"]["content"]["application/json"]
            example = operation.Case(
                body=content["example"],
                media_type="application/json",
                path_parameters={
                    p["name"]: p["schema"]["enum"][0]
                    for p in operation.definition.raw.get("parameters", [])
                },
            )
            assert example.call().status_code == 200
            statuses[200] += 1
        assert statuses[200] > 0, statuses
    else:
        assert sum(n for status, n in statuses.items() if 400 <= status < 500) > 0, statuses
