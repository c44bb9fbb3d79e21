"""MLflow's scoring protocol and the Open Inference Protocol (KServe V2): each accepts what its
protocol defines, answers in its shape, and is one more door to the one input contract: the
same record gets the same prediction, or the same reasons, from every door."""

import contextlib
import json
import re
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from features import edge_records
from model import Artifact
from serving import mlflow_protocol, open_inference
from serving.app import create_app
from serving.settings import Settings

from .conftest import RECORD

NAME_AND_VERSION = r"penguins-species"


def v1(client: TestClient, records: list[dict[str, Any]]) -> dict[str, Any]:
    return client.post("/v1/predict", json={"records": records}).json()


def v2_inputs(records: list[dict[str, Any]], artifact: Artifact) -> list[dict[str, Any]]:
    """One input per feature, typed as the model's metadata says; missing values as BYTES."""
    meta = {i["name"]: i["datatype"] for i in artifact_metadata(artifact)["inputs"]}
    inputs = []
    for name, typed in meta.items():
        cells, kind = [r.get(name) for r in records], typed
        if any(c is None for c in cells) or any(isinstance(c, str) for c in cells):
            kind, cells = "BYTES", ["" if c is None else str(c) for c in cells]
        inputs.append({"name": name, "datatype": kind, "shape": [len(cells)], "data": cells})
    return inputs


def artifact_metadata(artifact: Artifact) -> dict[str, Any]:
    from serving.door import Door  # noqa: PLC0415
    from serving.open_inference import model_metadata  # noqa: PLC0415

    return model_metadata(Door(artifact, None, None, None))  # type: ignore[arg-type]


def test_mlflow_forms_copied_from_its_documentation_predict_as_v1(
    client: TestClient, penguins: pd.DataFrame, artifact: Artifact
) -> None:
    """dataframe_split (pandas' to_json(orient="split"), index included), dataframe_records,
    instances, inputs (columns), text/csv; an optional params object is accepted."""
    frame = penguins.dropna().head(12)[artifact.spec.feature_names]
    records = json.loads(frame.to_json(orient="records"))
    expected = [p["prediction"] for p in v1(client, records)["predictions"]]
    bodies = [
        {"dataframe_split": json.loads(frame.to_json(orient="split"))},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": frame.to_dict(orient="list")},
        {"dataframe_records": records, "params": {"anything": 1}},
    ]
    for body in bodies:
        answer = client.post("/invocations", json=body)
        assert answer.status_code == 200, (body, answer.text)
        assert answer.json() == {"predictions": expected}
    csv = client.post(
        "/invocations", content=frame.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.json() == {"predictions": expected}
    assert client.get("/ping").status_code == 200
    assert client.get("/ping").text == "\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", client.get("/version").text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"records": [RECORD]}, "exactly one of the input fields"),
        ({"instances": [RECORD], "inputs": [RECORD]}, "exactly one of the input fields"),
        ([RECORD], "Received a list"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "rows of 1 values"),
        ({"inputs": {"island": ["Dream"], "sex": []}}, "all of one length"),
        ({"dataframe_records": [RECORD], "params": [1]}, "'params' must be a JSON object"),
    ],
)
def test_mlflow_refuses_as_mlflow_does(client: TestClient, body: Any, message: str) -> None:
    answer = client.post("/invocations", json=body)
    assert answer.status_code == 400
    error = answer.json()
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] in {"BAD_REQUEST", "INVALID_PARAMETER_VALUE"}
    assert message in error["message"]


def test_mlflow_content_types(client: TestClient) -> None:
    bad = client.post("/invocations", content=b"x", headers={"content-type": "text/plain"})
    assert bad.status_code == 415
    assert bad.headers["content-type"].startswith("text/plain")
    assert "only supports the following content types" in bad.text
    latin = "application/json; charset=latin-1"
    assert (
        client.post("/invocations", content=b"{}", headers={"content-type": latin}).status_code
        == 415
    )
    broken = client.post("/invocations", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["error_code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/json; charset=UTF-8", 200),  # charset names are case-insensitive
        ("application/json;charset=Utf-8", 200),
        ("Application/JSON; charset=UTF-8", 200),  # so are media types
        ("application/json; charset=latin-1", 415),
        ("application/json; charset=UTF-16", 415),
        ("application/json; charset=utf8", 415),
    ],
)
def test_mlflow_charset_case(client: TestClient, content_type: str, status: int) -> None:
    """UTF-8 is accepted whatever its case; another charset is MLflow's 415."""
    answer = client.post(
        "/invocations",
        content=json.dumps({"dataframe_records": [RECORD]}),
        headers={"content-type": content_type},
    )
    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.json() == {
            "predictions": [v1(client, [RECORD])["predictions"][0]["prediction"]]
        }
    else:
        assert answer.text == "The scoring server only supports UTF-8"


def test_open_inference_health_metadata_and_infer(
    client: TestClient, penguins: pd.DataFrame, artifact: Artifact
) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "serving"
    meta = client.get(f"/v2/models/{artifact.name}").json()
    assert [i["name"] for i in meta["inputs"]] == artifact.spec.feature_names
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "island": "BYTES",
        "bill_length_mm": "FP64",
        "bill_depth_mm": "FP64",
        "flipper_length_mm": "FP64",
        "body_mass_g": "FP64",
        "sex": "BYTES",
    }
    assert meta["versions"] == [artifact.version]
    versioned = f"/v2/models/{artifact.name}/versions/{artifact.version}"
    assert client.get(f"{versioned}/ready").json() == {"name": artifact.name, "ready": True}
    assert client.get("/v2/models/other").status_code == 404
    assert client.get("/v2/models/other").json()["error"].startswith("unknown model 'other'")

    frame = penguins.head(15)[artifact.spec.feature_names]  # nulls in it: sent as BYTES ""
    records = json.loads(frame.to_json(orient="records"))
    expected = v1(client, records)["predictions"]
    body = {"id": "42", "inputs": v2_inputs(records, artifact)}
    answer = client.post(f"/v2/models/{artifact.name}/infer", json=body).json()
    assert answer["model_name"] == artifact.name
    assert answer["model_version"] == artifact.version
    assert answer["id"] == "42"
    (predict,) = answer["outputs"]
    assert predict == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [15],
        "data": [p["prediction"] for p in expected],
    }
    body["outputs"] = [{"name": "predict_proba"}, {"name": "predict"}]
    proba, _ = client.post(f"{versioned}/infer", json=body).json()["outputs"]
    assert proba["shape"] == [15, 3]
    assert np.asarray(proba["data"]).reshape(15, 3).tolist() == [
        [p["probabilities"][c] for c in artifact.classes] for p in expected
    ]


def binary_body(records: list[dict[str, Any]], artifact: Artifact) -> tuple[bytes, int]:
    """The binary tensor extension, as tritonclient sends it by default."""
    inputs, blobs = [], b""
    for tensor in v2_inputs(records, artifact):
        if tensor["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(c.encode())) + c.encode() for c in tensor["data"])
        else:
            raw = np.asarray(tensor["data"], dtype=np.float64).tobytes()
        inputs.append({**tensor, "data": None, "parameters": {"binary_data_size": len(raw)}})
        inputs[-1].pop("data")
        blobs += raw
    header = json.dumps({"inputs": inputs}).encode()
    return header + blobs, len(header)


def test_open_inference_binary_inputs(client: TestClient, artifact: Artifact) -> None:
    records = [RECORD, {**RECORD, "sex": None, "island": "Biscoe"}]
    body, header = binary_body(records, artifact)
    headers = {"inference-header-content-length": str(header)}
    answer = client.post(f"/v2/models/{artifact.name}/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    expected = [p["prediction"] for p in v1(client, records)["predictions"]]
    assert answer.json()["outputs"][0]["data"] == expected
    cut = client.post(f"/v2/models/{artifact.name}/infer", content=body[:-3], headers=headers)
    assert cut.status_code == 400


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["inputs"].pop(), "field required"),
        (lambda b: b["inputs"][0].update(shape=[2]), "shape [2] but 1 values"),
        (lambda b: b["inputs"][1].update(data=["x"]), "is not a FP64 value"),
        (lambda b: b["inputs"][1].update(datatype="FP128"), "unknown datatype"),
        (lambda b: b.update(outputs=[{"name": "logits"}]), "unknown output 'logits'"),
        (lambda b: b["inputs"].append({**b["inputs"][0]}), "input island: appears 2 times"),
        (lambda b: b.update(inputs={}), 'expected {"inputs": [...]}'),
    ],
)
def test_open_inference_refusals_name_the_input(
    client: TestClient,
    artifact: Artifact,
    change: Any,
    message: str,
) -> None:
    body = {"inputs": v2_inputs([RECORD], artifact)}
    change(body)
    answer = client.post(f"/v2/models/{artifact.name}/infer", json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def infer_post(
    client: TestClient, artifact: Artifact, header: dict[str, Any], blob: bytes = b"", **sent: str
) -> tuple[int, dict[str, Any]]:
    """POST an infer request: ``header`` as JSON, then ``blob`` (binary tensor data), with the
    header's length sent as ``Inference-Header-Content-Length`` unless given."""
    text = json.dumps(header).encode()
    length = sent.get("length", str(len(text)) if blob else None)
    headers = {"content-type": "application/json"}
    if length is not None:
        headers["inference-header-content-length"] = length
    answer = client.post(f"/v2/models/{artifact.name}/infer", content=text + blob, headers=headers)
    return answer.status_code, answer.json()


def test_open_inference_outputs_are_asked_once(artifact: Artifact) -> None:
    """An output asked twice (or 20,000 times: the answer grew with every copy, 2.8 MB for a
    540 KB request) is refused, naming it; so an answer holds each output at most once."""
    with TestClient(create_app(Settings(max_body_bytes=1_000_000), artifact)) as client:
        inputs = v2_inputs([RECORD], artifact)
        for outputs in (
            [{"name": "predict"}] * 20_000,
            [{"name": "predict_proba"}, {"name": "predict"}, {"name": "predict_proba"}],
        ):
            status, answer = infer_post(client, artifact, {"inputs": inputs, "outputs": outputs})
            assert status == 400, answer
            name, count = outputs[-1]["name"], outputs.count(outputs[-1])
            assert answer["error"].startswith(f"output {name!r} asked {count} times"), answer
        both = [{"name": "predict"}, {"name": "predict_proba"}]
        status, answer = infer_post(client, artifact, {"inputs": inputs, "outputs": both})
        assert status == 200, answer
        assert [o["name"] for o in answer["outputs"]] == ["predict", "predict_proba"]


def test_open_inference_bytes_must_be_utf8(client: TestClient, artifact: Artifact) -> None:
    """Binary BYTES that are not UTF-8 are refused, naming the input and the element: they
    were decoded with replacement characters, and an open category (island) was scored."""
    inputs = [i for i in v2_inputs([RECORD, RECORD], artifact) if i["name"] != "island"]
    for raw, status in ((b"Dream", 200), (b"\xff\xfeDream", 400), (b"Dr\xc3", 400)):
        blob = struct.pack("<I", 5) + b"Dream" + struct.pack("<I", len(raw)) + raw
        island = {"name": "island", "datatype": "BYTES", "shape": [2]}
        island["parameters"] = {"binary_data_size": len(blob)}
        got, answer = infer_post(client, artifact, {"inputs": [*inputs, island]}, blob)
        assert got == status, (raw, answer)
        if status == 400:
            assert answer == {"error": "input 'island': element 1 is not UTF-8 text"}


@pytest.mark.parametrize(
    ("datatype", "value", "accepted"),
    [
        ("INT64", 192, True),
        ("INT64", 192.7, False),
        ("INT64", 192.0, False),  # JSON 192.0: no integer literal
        ("INT32", 2**31, False),
        ("INT32", -(2**31), True),
        ("UINT8", -1, False),
        ("INT64", True, False),
        ("FP32", 192, True),
        ("FP64", 192.5, True),
        ("FP32", 1e39, False),  # beyond float32's range: the tensor cannot hold it
        ("FP32", -1e39, False),
        ("FP32", 3.4e38, True),
        ("FP16", 70000, False),
        ("FP16", 65504.0, True),  # float16's largest
        pytest.param("FP64", 10**400, False, id="FP64-10**400"),  # no float holds it
    ],
)
def test_open_inference_json_values_fit_their_datatype(
    client: TestClient, artifact: Artifact, datatype: str, value: Any, accepted: bool
) -> None:
    """A JSON value its tensor's datatype cannot hold (45.7 in an INT64, 1e39 in an FP32) is
    refused, naming the input: it was read as the number it is, whatever the datatype said."""
    inputs = v2_inputs([RECORD], artifact)
    for tensor in inputs:
        if tensor["name"] == "flipper_length_mm":
            tensor.update(datatype=datatype, data=[value])
    status, answer = infer_post(client, artifact, {"inputs": inputs})
    if accepted:
        assert status in {200, 400}, answer  # 400 only for the spec's own reasons (a bound)
        assert "is not a" not in answer.get("error", ""), answer
    else:
        assert status == 400, answer
        assert answer == {
            "error": f"input 'flipper_length_mm': {value!r} is not a {datatype} value"
        }


def test_open_inference_binary_framing_is_plain(client: TestClient, artifact: Artifact) -> None:
    """The header length is plain ASCII digits (``int()`` also reads ``6_16``, `` 616``,
    ``+616`` or Arabic-Indic digits: each was accepted); an input with both JSON ``data`` and
    ``binary_data_size`` is refused, naming it (the binary data silently won)."""
    body, length = binary_body([RECORD], artifact)
    header, blob = json.loads(body[:length]), body[length:]
    digits = str(length)
    assert len(digits) >= 2
    status, _ = infer_post(client, artifact, header, blob, length=digits)
    assert status == 200
    for sent in (
        f"{digits[0]}_{digits[1:]}",
        f" {digits}",
        f"{digits} ",
        f"+{digits}",
        f"0x{length:x}",
    ):
        status, answer = infer_post(client, artifact, header, blob, length=sent)
        assert status == 400, (sent, answer)
        assert "must be a number in plain digits" in answer["error"], answer
    arabic = digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))  # not over HTTP/1.1
    with pytest.raises(open_inference.InferenceError, match="must be a number in plain digits"):
        open_inference.parse(body, arabic, 1000)
    first = header["inputs"][0]
    first["data"] = ["Biscoe"]
    status, answer = infer_post(client, artifact, header, blob)
    assert status == 400, answer
    assert answer == {"error": f"input {first['name']!r}: both data and binary_data_size; send one"}


def reasons_v1(detail: list[dict[str, Any]]) -> set[tuple[int | None, str | None, str]]:
    return {(d.get("record"), d.get("field"), d["message"]) for d in detail}


def reasons_in(
    text: str, row_word: str, field_word: str
) -> set[tuple[int | None, str | None, str]]:
    """The (record, field, message) triples a protocol's one-line error lists."""
    found = set()
    for part in text.split(": ", 1)[1].split("; "):
        match = re.fullmatch(rf"(?:{row_word} (\d+))?(?: ?{field_word} (.+?))?: (.*)", part)
        assert match, part
        row, field, message = match.groups()
        found.add((None if row is None else int(row), field, message))
    return found


def test_every_door_gives_the_same_answer(client: TestClient, artifact: Artifact) -> None:
    """For valid and invalid records (edge records, then each made wrong in one field): the
    same prediction, or the same rejection reasons, from /v1/predict, /invocations and
    /v2/.../infer."""
    records = edge_records(artifact.spec)
    wrong = [
        {**RECORD, "sex": "unknown"},
        {**RECORD, "bill_length_mm": 500},
        {**RECORD, "bill_length_mm": "forty"},
        {**RECORD, "island": ""},
        {**RECORD, "flipper_length_mm": "1,810"},
        {**RECORD, "body_mass_g": None, "bill_depth_mm": -3},
    ]
    outcomes = {"predicted": 0, "refused": 0}
    for record in [*records, *wrong]:
        first = client.post("/v1/predict", json={"records": [record]})
        mlflow = client.post("/invocations", json={"dataframe_records": [record]})
        v2 = client.post(
            f"/v2/models/{artifact.name}/infer", json={"inputs": v2_inputs([record], artifact)}
        )
        if first.status_code == 200:
            label = first.json()["predictions"][0]["prediction"]
            assert mlflow.json() == {"predictions": [label]}, record
            assert v2.json()["outputs"][0]["data"] == [label], record
            outcomes["predicted"] += 1
            continue
        assert first.status_code == 422, record
        expected = reasons_v1(first.json()["detail"])
        assert mlflow.status_code == v2.status_code == 400, record
        assert reasons_in(mlflow.json()["message"], "record", "field") == expected, record
        assert reasons_in(v2.json()["error"], "row", "input") == expected, record
        outcomes["refused"] += 1
    assert outcomes["predicted"] >= len(records) - 1
    assert outcomes["refused"] >= len(wrong)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
TENSOR = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON | st.sampled_from(["island", "sex", "body_mass_g"]),
        "datatype": JSON | st.sampled_from(["BYTES", "FP64", "BOOL", "INT64"]),
        "shape": JSON | st.lists(st.integers(-1, 3), max_size=3),
        "data": JSON,
        "parameters": JSON | st.fixed_dictionaries({"binary_data_size": JSON}),
    },
)
REQUESTS = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=4) | JSON},
    optional={"id": JSON, "parameters": JSON, "outputs": JSON},
)


@given(body=REQUESTS | JSON)
@settings(max_examples=300, deadline=None)
def test_any_json_is_parsed_or_refused_by_the_protocols(body: Any) -> None:
    """Whatever JSON arrives, each protocol's reading either gives records or raises its own
    refusal: never another exception (a 500)."""
    raw = json.dumps(body).encode()
    with contextlib.suppress(open_inference.InferenceError):
        open_inference.records(open_inference.parse(raw, None, 1000), 1000)
    with contextlib.suppress(mlflow_protocol.MlflowError):
        mlflow_protocol.records_from_json(raw, 1000)


MLFLOW_FORMS = ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]


def mlflow_request(form: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``records`` as ``client.post`` arguments in one of MLflow's forms."""
    if form == "csv":
        csv = pd.DataFrame(records).to_csv(index=False)
        return {"content": csv, "headers": {"content-type": "text/csv"}}
    if form == "dataframe_split":
        columns = list(records[0])
        rows = [[r[c] for c in columns] for r in records]
        return {"json": {form: {"columns": columns, "data": rows}}}
    if form == "inputs":
        return {"json": {form: {c: [r[c] for r in records] for c in records[0]}}}
    return {"json": {form: records}}


@pytest.mark.parametrize("form", MLFLOW_FORMS)
def test_mlflow_row_limit_is_exact(client: TestClient, form: str) -> None:
    """The client's limit is 50 records: 49 and 50 are scored, 51 is a 413, in every form."""
    for n, status in ((49, 200), (50, 200), (51, 413)):
        answer = client.post("/invocations", **mlflow_request(form, [RECORD] * n))
        assert answer.status_code == status, (n, answer.text)
        if status == 200:
            assert len(answer.json()["predictions"]) == n
        else:
            assert answer.json()["message"] == "too many records: at most 50 per request"


def test_rows_beyond_the_limit_are_refused_before_they_are_built(
    client: TestClient, artifact: Artifact
) -> None:
    """A small body announcing many rows (a binary tensor of 1-byte booleans, a long column)
    is a 413 at once, as /v1/predict's: the client's limit is 50 records."""
    many = 51
    body, header = binary_body([RECORD] * many, artifact)
    headers = {"inference-header-content-length": str(header)}
    v2 = client.post(f"/v2/models/{artifact.name}/infer", content=body, headers=headers)
    assert v2.status_code == 413
    assert v2.json() == {"error": "too many records: at most 50 per request"}
    columns = {name: [value] * many for name, value in RECORD.items()}
    mlflow = client.post("/invocations", json={"inputs": columns})
    assert mlflow.status_code == 413
    assert mlflow.json()["message"] == "too many records: at most 50 per request"
    surrogate = {"inputs": [{"name": "\ud800", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}
    answer = client.post(
        f"/v2/models/{artifact.name}/infer",
        content=json.dumps(surrogate),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
