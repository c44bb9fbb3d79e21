"""Finite outputs only (issue 26): a valid record the model gives no finite prediction for (a
huge value of a feature without bounds through a linear model: an infinite value, NaN class
probabilities) is refused like an invalid record, naming it, at every door: 422 on /v1, 400
on MLflow's /invocations and the Open Inference Protocol (their per-record refusals), a row of
the rejects file for `serving score`; never a 200 holding null, Infinity or NaN."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from model import Artifact, TrainConfig, load_artifact, save_result, train
from serving.app import create_app
from serving.batch import rejects_path, score_file
from serving.cli import main
from serving.settings import Settings

from .conftest import RECORD, ROOT

HUGE = 1.7e308
"""Below the largest float: a valid number for a feature without bounds."""
BOUNDS = "min = 150.0\nmax = 260.0\n"


def unbounded(folder: Path, task: str, *, millimetres_per_unit: float = 1.0) -> Path:
    """The penguins model of ``task`` with ``flipper_length_mm`` left without bounds, trained
    on that column divided by ``millimetres_per_unit`` (a column of small spread overflows once
    standardised: NaN class probabilities)."""
    name = "penguins_species" if task == "classification" else "penguins_body_mass"
    spec_text = (ROOT / "configs" / f"{name}.features.toml").read_text(encoding="utf-8")
    assert BOUNDS in spec_text
    spec = folder / "spec.features.toml"
    spec.write_text(spec_text.replace(BOUNDS, ""), encoding="utf-8")
    data = pd.read_csv(ROOT / "data" / "penguins.csv")
    data["flipper_length_mm"] /= millimetres_per_unit
    data.to_csv(folder / "data.csv", index=False)
    config = TrainConfig.from_toml(ROOT / "configs" / f"{name}.toml")
    config = config.model_copy(update={"spec": spec, "data": folder / "data.csv"})
    return save_result(train(config), folder / "model")


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unbounded(tmp_path_factory.mktemp("regression"), "regression")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("classification")
    return unbounded(folder, "classification", millimetres_per_unit=1000.0)


def rows(artifact: Artifact, flippers: list[float]) -> list[dict[str, Any]]:
    names = artifact.spec.feature_names
    base = {k: v for k, v in (RECORD | {"species": "Adelie"}).items() if k in names}
    return [base | {"flipper_length_mm": flipper} for flipper in flippers]


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One input per feature: numbers FP64, categories BYTES."""
    inputs = []
    for name in records[0]:
        cells = [r[name] for r in records]
        kind = "BYTES" if isinstance(cells[0], str) else "FP64"
        inputs.append({"name": name, "datatype": kind, "shape": [len(cells)], "data": cells})
    return {"inputs": inputs}


def no_infinity(text: str) -> None:
    """Python's json.loads takes NaN and Infinity, which are not JSON: refuse them."""

    def refuse(constant: str) -> None:
        raise AssertionError(constant)

    json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(("task", "normal"), [("regression", 190.0), ("classification", 0.19)])
def test_every_door_refuses_the_record_without_a_finite_prediction(
    regression: Path, classifier: Path, task: str, normal: float
) -> None:
    artifact = load_artifact(regression if task == "regression" else classifier)
    wrong = (
        "the model's prediction is not a finite number"
        if task == "regression"
        else "the model's class probabilities are not finite numbers"
    )
    records = rows(artifact, [normal, HUGE, normal, -HUGE])
    with TestClient(create_app(Settings(), artifact)) as client:
        assert client.get("/ready").status_code == 200
        v1 = client.post("/v1/predict", json={"records": records})
        assert v1.status_code == 422, v1.text
        assert v1.json()["total"] == 2
        assert [(d["record"], d["field"]) for d in v1.json()["detail"]] == [(1, None), (3, None)]
        assert all(wrong in d["message"] for d in v1.json()["detail"])

        mlflow = client.post("/invocations", json={"dataframe_records": records})
        assert mlflow.status_code == 400, mlflow.text
        assert mlflow.json()["error_code"] == "BAD_REQUEST"
        assert f"record 1: {wrong}" in mlflow.json()["message"]
        assert f"record 3: {wrong}" in mlflow.json()["message"]

        name = artifact.name
        v2 = client.post(f"/v2/models/{name}/infer", json=v2_body(records))
        assert v2.status_code == 400, v2.text
        assert f"row 1: {wrong}" in v2.json()["error"]
        assert f"row 3: {wrong}" in v2.json()["error"]

        # The finite ones alone are answered, with real numbers.
        finite = [records[0], records[2]]
        for answer in (
            client.post("/v1/predict", json={"records": finite}),
            client.post("/invocations", json={"dataframe_records": finite}),
            client.post(
                f"/v2/models/{name}/infer",
                json=v2_body(finite) | {"outputs": [{"name": "predict"}]},
            ),
        ):
            assert answer.status_code == 200, answer.text
            no_infinity(answer.text)
        metrics = client.get("/metrics").text
        assert "serving_rejected_records_total 6.0" in metrics


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_scoring_rejects_the_rows_without_a_finite_prediction(
    regression: Path, classifier: Path, tmp_path: Path, suffix: str
) -> None:
    for task, path, normal in (("regression", regression, 190.0), ("cls", classifier, 0.19)):
        artifact = load_artifact(path)
        source = tmp_path / f"{task}-input.csv"
        frame = pd.DataFrame(rows(artifact, [normal, HUGE, normal, -HUGE, normal]))
        frame.loc[2, "sex"] = "other"  # an invalid row beside them: one rejects file, in order
        frame.to_csv(source, index=False)
        output = tmp_path / f"{task}{suffix}"
        summary = score_file(artifact, source, output, chunk_rows=2)
        assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (5, 2, 3)
        read = pd.read_csv if suffix == ".csv" else pd.read_parquet
        scored, rejected = read(output), read(rejects_path(output))
        assert scored["row"].tolist() == [0, 4]
        numbers = [c for c in scored if c.startswith("probability_")] or ["prediction"]
        assert np.isfinite(scored[numbers].to_numpy(dtype=float)).all()
        assert rejected["row"].tolist() == [1, 2, 3]
        reasons = rejected["reasons"].tolist()
        assert "not a finite number" in reasons[0] or "not finite numbers" in reasons[0]
        assert "not a finite number" in reasons[2] or "not finite numbers" in reasons[2]
        assert "sex" in reasons[1]
        assert float(rejected["flipper_length_mm"].iloc[0]) == HUGE  # the row as it was read


def test_the_score_command_counts_them_as_rejected(
    regression: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = load_artifact(regression)
    source = tmp_path / "in.csv"
    pd.DataFrame(rows(artifact, [190.0, HUGE, 200.0])).to_csv(source, index=False)
    output = tmp_path / "scores.csv"
    code = main(["score", str(source), str(output), "--artifact", str(regression)])
    assert code == 4  # one row in three rejected: beyond --max-reject-share
    assert "3 input rows = 2 scored + 1 rejected" in capsys.readouterr().out
    assert "inf" not in output.read_text().lower()
    assert "prediction is not a finite number" in rejects_path(output).read_text()


def test_without_a_compiled_form_the_record_scikit_learn_cannot_take_is_refused(
    classifier: Path, tmp_path: Path
) -> None:
    """Predicting through scikit-learn (no compiled form), a value that is infinite once
    standardised made scikit-learn raise for the whole request (a 500) or file: that record
    alone is refused, naming it; the others are scored."""
    artifact = dataclasses.replace(load_artifact(classifier), compiled=None)
    assert not artifact.numpy_only
    records = rows(artifact, [0.19, HUGE, 0.2])
    beyond = "beyond the range the model's estimator takes"
    with TestClient(create_app(Settings(), artifact)) as client:
        assert client.get("/ready").status_code == 200
        v1 = client.post("/v1/predict", json={"records": records})
        assert v1.status_code == 422, v1.text
        assert [(d["record"], d["field"]) for d in v1.json()["detail"]] == [(1, None)]
        assert beyond in v1.json()["detail"][0]["message"]
        name = artifact.name
        v2 = client.post(f"/v2/models/{name}/infer", json=v2_body(records))
        assert v2.status_code == 400, v2.text
        assert f"row 1: a feature's value is {beyond}" in v2.json()["error"]
    source = tmp_path / "input.csv"
    pd.DataFrame(records).to_csv(source, index=False)
    summary = score_file(artifact, source, tmp_path / "scores.csv")
    assert (summary.scored_rows, summary.rejected_rows) == (2, 1)
    assert beyond in rejects_path(tmp_path / "scores.csv").read_text()


def test_a_refused_self_check_says_why_in_one_line(
    classifier: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The start-up self-check predicts each feature's sample value (here the midpoint of
    bounds far beyond the training data): when the model refuses that record, the log says
    why in one line ("RuntimeError: []" and a traceback said nothing), and /ready stays 503."""
    artifact = load_artifact(classifier)
    far = [
        c.model_copy(update={"min": 1e307, "max": 1e307}) if c.name == "flipper_length_mm" else c
        for c in artifact.spec.features
    ]
    far_off = dataclasses.replace(artifact, spec=artifact.spec.model_copy(update={"features": far}))
    capfd.readouterr()
    with TestClient(create_app(Settings(), far_off)) as client:
        assert client.get("/ready").status_code == 503
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line[:1] == "{"]
    errors = [e for e in lines if e["level"] == "error" and e["logger"] == "serving.app"]
    assert [e["message"] for e in errors] == [
        "self-check prediction refused: the model's class probabilities are not finite numbers"
        " (a value far outside the data it was trained on?); /ready stays 503"
    ]
    assert not any("traceback" in e for e in errors)
