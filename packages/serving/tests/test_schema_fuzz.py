"""Schemathesis generates requests from the app's own OpenAPI schema, valid and not: no answer
may be a server error or break the documented schema."""

import schemathesis
from hypothesis import HealthCheck, given, settings

from model import Artifact
from serving.app import create_app
from serving.settings import Settings


def test_no_server_error_and_schema_conformance(artifact: Artifact) -> None:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(Settings(max_records=20), artifact)
    )
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate()

        check()
        checked.append(operation.label)
    assert sorted(checked) == [
        "GET /health",
        "GET /metrics",
        "GET /ready",
        "GET /v1/metadata",
        "POST /v1/predict",
    ]
