"""The real thing: `serving serve` under uvicorn on a loopback port, spoken to over HTTP."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from model import Artifact
from serving.testing import ServerProcess

from .conftest import records_of


def test_ready_and_same_predictions_as_in_process(
    server: ServerProcess, artifact: Artifact, penguins: pd.DataFrame
) -> None:
    status, body = server.request("/ready")
    assert (status, body["version"]) == (200, artifact.version)
    frame = penguins.sample(25, random_state=1)
    status, body = server.request(
        "/v1/predict", {"records": records_of(frame, artifact.spec.feature_names)}
    )
    assert status == 200
    assert [p["prediction"] for p in body["predictions"]] == artifact.predict(
        frame
    ).predictions.tolist()


def test_concurrent_clients(
    server: ServerProcess, artifact: Artifact, penguins: pd.DataFrame
) -> None:
    """Prediction runs off the event loop: many clients at once all get their own answers,
    and liveness keeps answering while large batches are being predicted."""
    frames = [penguins.sample(200, random_state=seed) for seed in range(16)]
    expected = [artifact.predict(f).predictions.tolist() for f in frames]

    def predict(frame: pd.DataFrame) -> tuple[int, list[str]]:
        status, body = server.request(
            "/v1/predict", {"records": records_of(frame, artifact.spec.feature_names)}
        )
        return status, [p["prediction"] for p in body["predictions"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = [pool.submit(predict, f) for f in frames]
        health = [pool.submit(server.request, "/health") for _ in range(16)]
        results = [b.result() for b in batches]
        assert all(h.result() == (200, {"status": "ok"}) for h in health)
    assert [status for status, _ in results] == [200] * 16
    assert [predictions for _, predictions in results] == expected


def test_json_access_log(server: ServerProcess) -> None:
    server.request("/health")
    server.stop()
    lines = [line for line in server.log.read_text().splitlines() if '"serving.access"' in line]
    assert any('"route": "/health"' in line and '"status": 200' in line for line in lines)


def test_start_up_without_an_artifact_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "serve", "--port", "1"],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "SERVING_ARTIFACT": str(missing)},
    )
    assert result.returncode == 1
    assert f"error: {missing}: artifact directory not found" in result.stderr
    assert "Traceback" not in result.stderr
