import json
import logging
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features import NULL_TEXT, PLAIN_NUMBER
from model import (
    Artifact,
    HistGradientBoosting,
    RandomForest,
    TrainConfig,
    load_artifact,
    save_result,
    train,
)
from serving.app import create_app
from serving.observability import JsonFormatter
from serving.settings import Settings

from .conftest import RECORD, ROOT, predicted, records_of


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_after_self_check(client: TestClient, artifact: Artifact) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "model": "penguins-species",
        "version": artifact.version,
    }


def test_not_ready_before_start_up(artifact: Artifact) -> None:
    app = create_app(Settings(), artifact)
    response = TestClient(app).get("/ready")  # no `with`: the lifespan has not run
    assert response.status_code == 503
    assert response.json() == {"error": "model not ready", "detail": [], "total": 0}


def test_metadata(client: TestClient, artifact: Artifact) -> None:
    body = client.get("/v1/metadata").json()
    assert body["model"] == "penguins-species"
    assert body["version"] == artifact.version
    assert body["task"] == "classification"
    assert body["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert body["artifact_sha256"] == artifact.manifest.files["pipeline.skops"]
    assert [f["name"] for f in body["features"]] == artifact.spec.feature_names
    assert body["metrics"]["balanced_accuracy"] >= 0.95
    assert body["versions"]["features"] == artifact.manifest.versions["features"]


def test_predictions_match_in_process(
    client: TestClient, artifact: Artifact, penguins: pd.DataFrame
) -> None:
    frame = penguins.head(40)
    response = client.post(
        "/v1/predict", json={"records": records_of(frame, artifact.spec.feature_names)}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"]) == ("penguins-species", artifact.version)
    expected = predicted(artifact, frame)
    assert [p["prediction"] for p in body["predictions"]] == expected.labels.tolist()
    served = np.array(
        [
            [p["probabilities"][c] for c in ["Adelie", "Chinstrap", "Gentoo"]]
            for p in body["predictions"]
        ]
    )
    np.testing.assert_allclose(served, expected.probabilities, rtol=1e-12)
    sklearn = artifact.pipeline.predict_proba(frame[artifact.spec.feature_names])
    np.testing.assert_allclose(served, sklearn, rtol=1e-9, atol=1e-12)


TREES = {
    "random_forest": RandomForest(kind="random_forest", n_estimators=30),
    "hist_gradient_boosting": HistGradientBoosting(kind="hist_gradient_boosting", max_iter=30),
}


@pytest.fixture(scope="module", params=list(TREES))
def tree_artifact(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
    result = train(config.model_copy(update={"estimator": TREES[request.param]}))
    return result, save_result(result, tmp_path_factory.mktemp("trees") / request.param)


def test_tree_model_is_served_by_numpy_as_scikit_learn_predicts(
    tree_artifact, penguins: pd.DataFrame
) -> None:
    result, path = tree_artifact
    artifact = load_artifact(path)
    assert artifact.numpy_only  # compiled preprocessing and trees
    frame = penguins.head(30)
    with TestClient(create_app(Settings(), artifact)) as client:
        assert client.get("/ready").status_code == 200
        body = client.post(
            "/v1/predict", json={"records": records_of(frame, artifact.spec.feature_names)}
        ).json()
    expected = result.pipeline.predict_proba(frame[artifact.spec.feature_names])
    served = [[p["probabilities"][c] for c in artifact.classes] for p in body["predictions"]]
    np.testing.assert_allclose(served, expected, rtol=1e-12, atol=1e-12)
    labels = [p["prediction"] for p in body["predictions"]]
    assert labels == result.pipeline.predict(frame[artifact.spec.feature_names]).tolist()


def heavy_imports_of_a_service(path: Path) -> list[str]:
    """What a process that serves the artifact at ``path`` (to /ready) has imported of the
    heavy libraries."""
    script = f"""
import sys
from fastapi.testclient import TestClient
from serving.app import create_app
from serving.settings import Settings
with TestClient(create_app(Settings(artifact={str(path)!r}))) as client:
    assert client.get("/ready").status_code == 200
print(sorted({{"sklearn", "scipy", "pandas", "pyarrow", "skops"}} & set(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().replace("'", '"'))


def test_service_starts_without_scikit_learn_or_pandas(artifact_path: Path) -> None:
    """The compiled model keeps heavy imports out of a serving process (start-up time)."""
    assert heavy_imports_of_a_service(artifact_path) == []


def test_tree_service_starts_without_scikit_learn_or_scipy(tree_artifact) -> None:
    assert heavy_imports_of_a_service(tree_artifact[1]) == []


def test_regression_service(regression_path, penguins: pd.DataFrame) -> None:
    artifact = load_artifact(regression_path)
    with TestClient(create_app(Settings(), artifact)) as client:
        frame = penguins.dropna(subset=["body_mass_g"]).head(5)
        body = client.post(
            "/v1/predict", json={"records": records_of(frame, artifact.spec.feature_names)}
        ).json()
    values = [p["prediction"] for p in body["predictions"]]
    np.testing.assert_allclose(values, predicted(artifact, frame).labels.astype(float))
    assert all(p["probabilities"] is None for p in body["predictions"])


def test_openapi_documents_every_field(client: TestClient, artifact: Artifact) -> None:
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["PenguinsSpeciesRecord"]
    assert set(record["properties"]) == artifact.spec.known_columns  # target, year: not used
    assert record["required"] == artifact.spec.feature_names  # every feature key, null or not
    bill = record["properties"]["bill_length_mm"]["anyOf"]
    assert bill == [
        {"type": "number", "minimum": 20.0, "maximum": 80.0},
        {"type": "string", "pattern": PLAIN_NUMBER},
        {"type": "string", "enum": list(NULL_TEXT)},
        {"type": "null"},
    ]
    assert record["properties"]["sex"]["anyOf"][0]["enum"] == ["female", "male"]
    assert record["properties"]["island"]["type"] == "string"  # not nullable: no null in it
    assert record["additionalProperties"] is False
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]["records"]
    assert (request["minItems"], request["maxItems"]) == (1, 50)


def _bad(client: TestClient, record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    second = {**record, **changes}
    response = client.post("/v1/predict", json={"records": [record, second]})
    assert response.status_code == 422
    return response.json()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"bill_length_mm": "long"}, "bill_length_mm", "wrong type: expected a number"),
        ({"bill_length_mm": "3,750"}, "bill_length_mm", "wrong type: expected a number"),
        ({"bill_length_mm": " 39.5"}, "bill_length_mm", "wrong type: expected a number"),
        ({"bill_length_mm": 95}, "bill_length_mm", "above maximum 80"),
        ({"bill_length_mm": "95"}, "bill_length_mm", "above maximum 80"),  # text: same bounds
        ({"bill_depth_mm": 9.5}, "bill_depth_mm", "below minimum 10"),
        ({"island": None}, "island", "null not allowed"),
        ({"island": "NA"}, "island", "null not allowed"),  # a null text is null
        ({"island": 3}, "island", "wrong type: expected a string"),
        ({"sex": "unknown"}, "sex", "category not allowed (allowed: female, male)"),
        ({"flipper_length_mm": True}, "flipper_length_mm", "wrong type: expected a number"),
        ({"flipper_length_mm": [181]}, "flipper_length_mm", "wrong type: expected a number"),
        ({"bill_lenght_mm": 40}, "bill_lenght_mm", "unknown field"),
    ],
)
def test_bad_field_names_record_and_field(
    client: TestClient, record: dict[str, Any], changes: dict[str, Any], field: str, message: str
) -> None:
    body = _bad(client, record, **changes)
    assert body == {
        "error": "invalid input",
        "detail": [{"record": 1, "field": field, "message": message}],
        "total": 1,
    }


@pytest.mark.parametrize("field", ["island", "bill_length_mm", "sex"])
def test_missing_feature_key_is_field_required(
    client: TestClient, record: dict[str, Any], field: str
) -> None:
    """Every feature key must be present, even a nullable one (null is the way to say "no
    value"); the whole request is refused, naming the record and the field."""
    del record[field]
    response = client.post("/v1/predict", json={"records": [{**record, field: None}, record]})
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid input",
        "detail": [{"record": 1, "field": field, "message": "field required"}],
        "total": 1,
    }


def test_unknown_field(client: TestClient, record: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json={"records": [{**record, "colour": "black"}]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"record": 0, "field": "colour", "message": "unknown field"}
    ]


def test_columns_the_spec_names_but_does_not_use_are_accepted(
    client: TestClient, record: dict[str, Any]
) -> None:
    response = client.post(
        "/v1/predict", json={"records": [{**record, "year": 2009, "species": "Adelie"}, record]}
    )
    assert response.status_code == 200
    first, second = response.json()["predictions"]
    assert first == second


def test_a_record_that_is_not_an_object(client: TestClient, record: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json={"records": [record, [1, 2]]})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"record": 1, "field": None, "message": "expected an object (a record of fields)"}
    ]


@pytest.mark.parametrize(
    ("field", "text", "number"),
    [
        ("bill_length_mm", "39.5", 39.5),
        ("body_mass_g", "3500", 3500),
        ("bill_depth_mm", "1.79e1", 17.9),
        ("flipper_length_mm", "+192.0", 192),
    ],
)
def test_numbers_as_json_strings_are_parsed_like_csv_text(
    client: TestClient, record: dict[str, Any], field: str, text: str, number: float
) -> None:
    """A JSON string holding a plain number is that number: the same prediction."""
    as_text, as_number = {**record, field: text}, {**record, field: number}
    response = client.post("/v1/predict", json={"records": [as_text, as_number]})
    assert response.status_code == 200
    by_text, by_number = response.json()["predictions"]
    assert by_text == by_number
    moved = client.post("/v1/predict", json={"records": [{**record, field: number * 1.3}]})
    assert moved.json()["predictions"][0]["probabilities"] != by_number["probabilities"]


@pytest.mark.parametrize("null", [None, "", "NA", "N/A", "null", "NULL"])
def test_nulls_and_null_texts_are_imputed_alike(
    client: TestClient, record: dict[str, Any], null: str | None
) -> None:
    response = client.post(
        "/v1/predict", json={"records": [{**record, "body_mass_g": null}, record]}
    )
    assert response.status_code == 200
    imputed, _ = response.json()["predictions"]
    reference = client.post("/v1/predict", json={"records": [{**record, "body_mass_g": None}]})
    assert imputed == reference.json()["predictions"][0]


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("NaN", "not finite"),
        ("Infinity", "above maximum 30"),  # beyond every bound, as the text 1e400 is
        ("-Infinity", "below minimum 10"),
    ],
)
def test_nan_and_infinity(client: TestClient, literal: str, reason: str) -> None:
    fields = {**RECORD, "bill_depth_mm": "@"}
    raw = json.dumps({"records": [fields]}).replace('"@"', literal)
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"record": 0, "field": "bill_depth_mm", "message": reason}]
    text = client.post("/v1/predict", json={"records": [{**RECORD, "bill_depth_mm": literal}]})
    assert text.json()["detail"] == [  # as text, it is no plain number
        {"record": 0, "field": "bill_depth_mm", "message": "wrong type: expected a number"}
    ]


def test_a_lone_surrogate_is_refused_not_a_server_error(client: TestClient) -> None:
    raw = json.dumps({"records": [{**RECORD, "bill_depth_mm": "@"}]}).replace('"@"', '"\\ud800"')
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {"record": 0, "field": "bill_depth_mm", "message": "wrong type: expected a number"}
    ]


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b'{"records": [', 400, "malformed JSON"),
        (b'{"records": []}', 422, "invalid input"),
        (b'{"records": {}}', 422, "invalid input"),
        (b"[]", 422, "invalid input"),
        (b'{"rows": []}', 422, "invalid input"),
    ],
)
def test_malformed_requests(client: TestClient, content: bytes, status: int, error: str) -> None:
    response = client.post(
        "/v1/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"] == error


def test_too_many_records(client: TestClient, record: dict[str, Any]) -> None:
    response = client.post("/v1/predict", json={"records": [record] * 51})
    assert response.status_code == 413
    assert response.json() == {
        "error": "too many records: at most 50 per request",
        "detail": [],
        "total": 0,
    }


def test_oversized_body(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b" " * 20_001, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "request body larger than 20000 bytes",
        "detail": [],
        "total": 0,
    }


def test_oversized_body_without_length(client: TestClient) -> None:
    def chunks():
        for _ in range(30):
            yield b" " * 1000

    response = client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_unknown_route_and_method(client: TestClient) -> None:
    assert client.get("/v2/predict").status_code == 404
    assert client.get("/v1/predict").status_code == 405
    assert client.get("/nope").json() == {"error": "Not Found", "detail": [], "total": 0}


def test_metrics(client: TestClient, record: dict[str, Any]) -> None:
    client.post("/v1/predict", json={"records": [record, record, record]})
    bad = [record, {**record, "sex": "x"}, {**record, "island": 1}]
    client.post("/v1/predict", json={"records": bad})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'serving_requests_total{route="/v1/predict",status="200"} 1.0' in text
    assert 'serving_requests_total{route="/v1/predict",status="422"} 1.0' in text
    assert "serving_predictions_total 3.0" in text
    assert "serving_rejected_records_total 2.0" in text
    assert 'serving_request_duration_seconds_count{route="/v1/predict"} 2.0' in text


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_one_json_log_line_per_request(client: TestClient, record: dict[str, Any]) -> None:
    handler = Lines()
    logger = logging.getLogger("serving.access")
    logger.addHandler(handler)
    try:
        client.post("/v1/predict", json={"records": [record, record]})
    finally:
        logger.removeHandler(handler)
    (line,) = handler.lines
    entry = json.loads(line)
    assert entry["route"] == "/v1/predict"
    assert entry["status"] == 200
    assert entry["records"] == 2
    assert entry["latency_ms"] > 0
    assert "Dream" not in line  # no payloads in logs


class FailingArtifact(Artifact):
    """A model that fails every prediction: what a server error looks like."""

    def predict(self, valid: Any) -> Any:
        message = "model exploded"
        raise RuntimeError(message)


def test_server_errors_are_answered_counted_and_logged(
    artifact: Artifact, record: dict[str, Any]
) -> None:
    failing = FailingArtifact(**{f.name: getattr(artifact, f.name) for f in fields(artifact)})
    handler = Lines()
    logger = logging.getLogger("serving.access")
    with TestClient(create_app(Settings(), failing)) as client:
        logger.addHandler(handler)
        try:
            response = client.post("/v1/predict", json={"records": [record]})
        finally:
            logger.removeHandler(handler)
        metrics = client.get("/metrics").text
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error", "detail": [], "total": 0}
    assert 'serving_requests_total{route="/v1/predict",status="500"} 1.0' in metrics
    assert 'serving_request_duration_seconds_count{route="/v1/predict"} 1.0' in metrics
    (line,) = handler.lines  # logged once, with what went wrong
    entry = json.loads(line)
    assert (entry["level"], entry["status"], entry["route"]) == ("error", 500, "/v1/predict")
    assert entry["error"] == "RuntimeError: model exploded"
    assert "in predict\n" in entry["traceback"]


def test_error_detail_is_capped(artifact: Artifact, record: dict[str, Any]) -> None:
    """However wrong a body is, the answer lists the first 100 problems and counts them all:
    unknown fields (the whole request refused) as invalid values (row by row)."""
    noisy = {**record, **{f"extra_{i}": i for i in range(60)}}
    body = {"records": [noisy] * 199 + [{**noisy, "sex": "x"}]}
    with TestClient(create_app(Settings(), artifact)) as client:
        response = client.post("/v1/predict", json=body)
        metrics = client.get("/metrics").text
        values = client.post(
            "/v1/predict", json={"records": [{**record, "sex": "x", "island": 7}] * 150}
        )
        after = client.get("/metrics").text
    assert response.status_code == 422
    answer = response.json()
    assert answer["total"] == 200 * 60
    assert len(answer["detail"]) == 100
    assert answer["detail"][0] == {"record": 0, "field": "extra_0", "message": "unknown field"}
    assert [item["record"] for item in answer["detail"]] == [0] * 60 + [1] * 40
    assert "serving_rejected_records_total 200.0" in metrics
    assert values.status_code == 422
    answer = values.json()
    assert answer["total"] == 300
    assert len(answer["detail"]) == 100
    assert answer["detail"][:2] == [
        {"record": 0, "field": "island", "message": "wrong type: expected a string"},
        {"record": 0, "field": "sex", "message": "category not allowed (allowed: female, male)"},
    ]
    assert "serving_rejected_records_total 350.0" in after


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type(client: TestClient, record: dict[str, Any], content_type: str) -> None:
    response = client.post(
        "/v1/predict",
        content=json.dumps({"records": [record]}),
        headers={"content-type": content_type},
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported content type: send JSON (application/json)"


def test_json_with_charset_and_deep_nesting(artifact: Artifact, record: dict[str, Any]) -> None:
    with TestClient(create_app(Settings(), artifact)) as client:
        ok = client.post(
            "/v1/predict",
            content=json.dumps({"records": [record]}),
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert ok.status_code == 200
        deep = client.post(
            "/v1/predict",
            content=b"[" * 200_000 + b"]" * 200_000,
            headers={"content-type": "application/json"},
        )
    assert deep.status_code == 400
    assert deep.json()["detail"][0]["message"] == "Invalid JSON: nested too deeply"


def test_a_lone_surrogate_in_a_field_name_is_an_answer_not_a_crash(client: TestClient) -> None:
    raw = json.dumps({"records": [{**RECORD, "@": 1}]}).replace('"@"', '"\\ud800"').encode()
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"record": 0, "field": "\ud800", "message": "unknown field"}
    ]


def test_too_many_records_wins_over_their_errors(artifact: Artifact) -> None:
    """413 whatever else is wrong, and the rejected-records counter never counts past the
    limit (a body of 70,000 bad records used to get a 422 and count 70,000)."""
    with TestClient(create_app(Settings(max_records=10), artifact)) as client:
        response = client.post("/v1/predict", json={"records": [{"a": 1, "b": 2}] * 5_000})
        metrics = client.get("/metrics").text
    assert response.status_code == 413
    assert response.json()["error"] == "too many records: at most 10 per request"
    assert "serving_rejected_records_total 0.0" in metrics
