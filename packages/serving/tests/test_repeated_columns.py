"""A column named twice is refused at every door (issue 26), whatever its kind (feature,
target, id or ignored column): a JSON object naming a key twice (the /v1 records, MLflow's
records, instances and column objects), a list of columns repeating one (MLflow's
dataframe_split and CSV, the Open Inference Protocol's inputs), a CSV or Parquet file. Before,
the HTTP doors silently used one of the copies (200)."""

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from features import InputError, repeated_columns
from model import Artifact
from serving.app import create_app
from serving.batch import score_file
from serving.schemas import RepeatedKeys, loads
from serving.settings import Settings
from serving.testing import ServerProcess

from .conftest import RECORD

TWICE = {  # a column of each kind, and the two values the request gives it
    "feature": ("bill_length_mm", 46.5, 60.0),
    "target": ("species", "Adelie", "Gentoo"),
    "id": ("tag", "a-1", "a-2"),
    "ignored": ("year", 2007, 2009),
}
KINDS = list(TWICE)


@pytest.fixture(scope="module")
def with_id(artifact: Artifact) -> Artifact:
    """The species model with an id column, ``tag``."""
    return dataclasses.replace(artifact, spec=artifact.spec.model_copy(update={"id_column": "tag"}))


@pytest.fixture(scope="module")
def door(with_id: Artifact) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(max_records=50), with_id)) as client:
        yield client


def obj(pairs: list[tuple[str, Any]]) -> str:
    """A JSON object written pair by pair: a key may repeat."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"


def pairs_twice(kind: str) -> list[tuple[str, Any]]:
    """A valid record's pairs, with the column of ``kind`` given twice, different values."""
    name, first, second = TWICE[kind]
    pairs = [(k, v) for k, v in RECORD.items() if k != name]
    return [*pairs[:2], (name, first), *pairs[2:], (name, second)]


def post_json(client: TestClient, path: str, text: str) -> Any:
    return client.post(path, content=text, headers={"content-type": "application/json"})


@pytest.mark.parametrize("kind", KINDS)
def test_v1_a_record_naming_a_field_twice(door: TestClient, kind: str) -> None:
    name = TWICE[kind][0]
    body = '{"records": [' + obj(list(RECORD.items())) + ", " + obj(pairs_twice(kind)) + "]}"
    answer = post_json(door, "/v1/predict", body)
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "error": "invalid input",
        "detail": [{"record": 1, "field": name, "message": "appears 2 times"}],
        "total": 1,
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "form", ["dataframe_records", "instances", "inputs", "dataframe_split", "csv"]
)
def test_mlflow_a_column_named_twice_in_any_form(door: TestClient, kind: str, form: str) -> None:
    name = TWICE[kind][0]
    pairs = pairs_twice(kind)
    columns, row = [k for k, _ in pairs], [v for _, v in pairs]
    if form == "csv":
        csv = ",".join(columns) + "\n" + ",".join(map(str, row)) + "\n"
        answer = door.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    elif form == "dataframe_split":
        split = {"dataframe_split": {"columns": columns, "data": [row]}}
        answer = door.post("/invocations", json=split)
    elif form == "inputs":  # columns as an object: the key is named twice
        answer = post_json(
            door, "/invocations", f'{{"{form}": {obj([(k, [v]) for k, v in pairs])}}}'
        )
    else:
        answer = post_json(door, "/invocations", f'{{"{form}": [{obj(pairs)}]}}')
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "BAD_REQUEST"
    where = {
        "inputs": f"key {name!r} appears 2 times in one JSON object",
        "dataframe_split": f"field {name}: appears 2 times",
        "csv": f"field {name}: appears 2 times",
    }.get(form, f"record 0 field {name}: appears 2 times")
    assert answer.json()["message"] == f"invalid input: {where}"


@pytest.mark.parametrize("kind", KINDS)
def test_open_inference_an_input_named_twice(
    door: TestClient, with_id: Artifact, kind: str
) -> None:
    name = TWICE[kind][0]
    inputs = [
        {"name": k, "datatype": "BYTES", "shape": [1], "data": [str(v)]}
        for k, v in pairs_twice(kind)
    ]
    answer = door.post(f"/v2/models/{with_id.name}/infer", json={"inputs": inputs})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": f"invalid input: input {name}: appears 2 times"}


def test_a_key_named_twice_anywhere_in_a_body_is_named(door: TestClient, with_id: Artifact) -> None:
    """Not only records: the top object, a V2 tensor, an object deeper down; and a ``:``
    inside a text (which takes the parser's slower, exact path) changes nothing."""
    record = obj(list(RECORD.items()))
    top = post_json(door, "/v1/predict", f'{{"records": [{record}], "records": [{record}]}}')
    assert top.status_code == 422, top.text
    assert top.json()["detail"] == [
        {
            "record": None,
            "field": None,
            "message": "key 'records' appears 2 times in one JSON object",
        }
    ]
    tensor = obj([("name", "island"), ("name", "sex"), ("datatype", "BYTES"), ("shape", [1])])
    v2 = post_json(door, f"/v2/models/{with_id.name}/infer", f'{{"inputs": [{tensor}]}}')
    assert v2.status_code == 400, v2.text
    assert v2.json() == {"error": "invalid input: key 'name' appears 2 times in one JSON object"}
    with_colon = [("tag", "a:b"), *pairs_twice("ignored")]
    answer = post_json(door, "/v1/predict", '{"records": [' + obj(with_colon) + "]}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["field"] == "year"
    fine = post_json(
        door, "/v1/predict", '{"records": [' + obj([*RECORD.items(), ("tag", "a:b")]) + "]}"
    )
    assert fine.status_code == 200, fine.text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_naming_a_column_twice(
    with_id: Artifact, tmp_path: Path, kind: str, suffix: str
) -> None:
    """What the batch scorer (and so each task of the Dask engine) refuses, by the same rule;
    Parquet can hold repeated names too."""
    pairs = pairs_twice(kind)
    names = [k for k, _ in pairs]
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        source.write_text(",".join(names) + "\n" + ",".join(str(v) for _, v in pairs) + "\n")
    else:
        table = pa.Table.from_arrays([pa.array([v]) for _, v in pairs], names=names)
        pq.write_table(table, source)
        assert pq.read_schema(source).names == names
    name = TWICE[kind][0]
    with pytest.raises(InputError, match=f"column '{name}': appears 2 times"):
        score_file(with_id, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_the_rule_names_spec_columns_and_leaves_others_to_unknown_fields(
    with_id: Artifact,
) -> None:
    """The one rule (``features.repeated_columns``): every spec column named more than once,
    in name order, with its count; other names are for ``unknown_fields`` to judge."""
    names = ["year", "sex", "tag", "x", "species", "x", "tag", "sex", "sex", "species", "year"]
    assert repeated_columns(with_id.spec, names) == [
        (None, "sex", "appears 3 times"),
        (None, "species", "appears 2 times"),
        (None, "tag", "appears 2 times"),
        (None, "year", "appears 2 times"),
    ]
    assert repeated_columns(with_id.spec, [*RECORD, "x", "x"]) == []


def test_a_real_server_refuses_a_field_named_twice(artifact_path: Path, tmp_path: Path) -> None:
    """Through uvicorn, as a client sends it."""
    with ServerProcess(["--artifact", str(artifact_path)], log=tmp_path / "server.log") as live:
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        body = ('{"records": [' + obj(pairs_twice("feature")) + "]}").encode()
        request = urllib.request.Request(
            live.url + "/v1/predict", data=body, headers={"content-type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 422
        detail = json.loads(refused.value.read())["detail"]
        assert detail == [{"record": 0, "field": "bill_length_mm", "message": "appears 2 times"}]


# --- the parser's proof that no key repeats -----------------------------------------------------

KEYS = st.sampled_from(["a", "b", "a:b", ":", "records", 'q"', "é"])
SCALARS = st.none() | st.booleans() | st.integers() | st.text(alphabet='ab:"\\ {}[],', max_size=5)


def _written(value: Any) -> str:
    """A drawn value as JSON text: an object is a list of pairs (``("obj", pairs)``)."""
    if isinstance(value, tuple):
        return "{" + ", ".join(f"{json.dumps(k)}: {_written(v)}" for k, v in value[1]) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_written(v) for v in value) + "]"
    return json.dumps(value)


def _repeats(value: Any) -> bool:
    if isinstance(value, tuple):
        keys = [k for k, _ in value[1]]
        return len(set(keys)) < len(keys) or any(_repeats(v) for _, v in value[1])
    if isinstance(value, list):
        return any(_repeats(v) for v in value)
    return False


VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda pairs: ("obj", pairs))
    ),
    max_leaves=25,
)


@given(value=VALUES)
@settings(max_examples=400, deadline=None)
def test_loads_refuses_exactly_the_bodies_with_a_repeated_key(value: Any) -> None:
    """Whatever the nesting, and ``:`` in keys and texts: refused iff some object repeats a
    key, else the same value as ``json.loads``."""
    text = _written(value).encode()
    if _repeats(value):
        with pytest.raises(RepeatedKeys):
            loads(text)
    else:
        assert loads(text) == json.loads(text)


def test_open_inference_refuses_any_input_named_twice(artifact: Artifact) -> None:
    """Even a name the spec ignores: the records kept the last copy silently. V2 has no file
    header to follow, so an input named twice is ambiguous whatever its name."""
    spec = artifact.spec.model_copy(update={"unknown_fields": "ignore"})
    lenient = dataclasses.replace(artifact, spec=spec)
    inputs = [
        {"name": k, "datatype": "BYTES", "shape": [1], "data": [str(v)]} for k, v in RECORD.items()
    ]
    extra = [{"name": "note", "datatype": "BYTES", "shape": [1], "data": [t]} for t in "ab"]
    with TestClient(create_app(Settings(), lenient)) as client:
        url = f"/v2/models/{lenient.name}/infer"
        answer = client.post(url, json={"inputs": [*inputs, *extra, extra[0]]})
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"error": "invalid input: input note: appears 3 times"}
        once = client.post(url, json={"inputs": [*inputs, extra[0]]})
        assert once.status_code == 200, once.text
        assert "serving_rejected_records_total 1.0" in client.get("/metrics").text
