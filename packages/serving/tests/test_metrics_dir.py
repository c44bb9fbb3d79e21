"""PROMETHEUS_MULTIPROC_DIR, the folder where several workers keep their metrics: checked at
start-up, emptied of an earlier run's metrics files (and of nothing else), and read so that
junk there never turns /metrics into a 500."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.metrics_core import Metric

from model import Artifact
from serving import observability
from serving.app import create_app
from serving.observability import MULTIPROCESS_DIR
from serving.settings import Settings
from serving.testing import ServerProcess, wait_until

from .conftest import RECORD


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_an_unusable_metrics_dir_is_a_one_line_start_up_error(
    artifact_path: Path, tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / "metrics"
    if kind == "a file":
        folder.write_text("not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "serve", "--port", "1", "--workers", "2"],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "SERVING_ARTIFACT": str(artifact_path), MULTIPROCESS_DIR: str(folder)},
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: {MULTIPROCESS_DIR}={folder}: "), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def _scrape(server: ServerProcess) -> float:
    """The service's predictions total, from a /metrics that must answer 200."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    (value,) = re.findall(r"^serving_predictions_total (\S+)$", text, re.M)
    return float(value)


def test_an_earlier_runs_metrics_are_removed_and_junk_is_ignored(
    artifact_path: Path, tmp_path: Path
) -> None:
    """A first run leaves its metrics files behind (as a killed service does); the second
    run removes them, and only them, and counts from zero; junk added while it runs (files
    prometheus_client could have written, truncated or not files at all, and a .db file of
    someone else's) is left out of /metrics, which keeps answering the totals."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    theirs = {"notes.txt": b"the operator's notes", "their.db": b"\x07" * 64}
    for name, content in theirs.items():
        (folder / name).write_bytes(content)
    (folder / "sub").mkdir()
    (folder / "sub" / "counter_1.db").write_bytes(b"kept: not in the folder itself")
    env = {MULTIPROCESS_DIR: str(folder)}
    args = ["--artifact", str(artifact_path)]

    with ServerProcess(args, log=tmp_path / "first.log", env=env) as first:
        for _ in range(3):
            assert first.request("/v1/predict", {"records": [RECORD]})[0] == 200
        assert _scrape(first) == 3.0
    left = {p.name for p in folder.glob("*_*.db")}
    assert any(name.startswith("counter_") for name in left), left

    log = tmp_path / "second.log"
    sent = 0

    def both_predicted() -> bool:
        nonlocal sent
        assert server.request("/v1/predict", {"records": [RECORD, RECORD]})[0] == 200
        sent += 1
        lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        return len({e["pid"] for e in lines if e.get("route") == "/v1/predict"}) == 2

    with ServerProcess([*args, "--workers", "2"], log=log, env=env) as server:
        assert _scrape(server) == 0.0  # nothing of the first run
        for name, content in theirs.items():
            assert (folder / name).read_bytes() == content, name
        assert (folder / "sub" / "counter_1.db").exists()
        wait_until(both_predicted, "both workers to answer a prediction", timeout=120)
        assert _scrape(server) == 2.0 * sent

        (folder / "counter_1.db").write_bytes(b"\x01\x00")  # truncated
        (folder / "gauge_livesum_2.db").write_bytes(b"\xff\xff\x00\x00" + b"\x00" * 60)  # corrupt
        (folder / "histogram_3.db").mkdir()  # not a file
        for _ in range(4):  # whichever worker answers
            assert _scrape(server) == 2.0 * sent
    assert "not a metrics file prometheus_client can read" in log.read_text()


def _counter_file(folder: Path) -> Path:
    """A real metrics file: another process counting ``probe_total`` to 5."""
    code = "from prometheus_client import Counter; Counter('probe', 'a probe').inc(5)"
    env = {**os.environ, MULTIPROCESS_DIR: str(folder)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    (written,) = folder.glob("counter_*.db")
    return written


def test_a_bad_metrics_file_is_read_once_and_stays_out(
    artifact: Artifact,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A bad file was merged again on every scrape, then the files one by one (quadratic):
    once found, it is left out unread while unchanged, with one warning; /metrics answers."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    good = _counter_file(folder)
    bad = folder / "counter_1.db"
    bad.write_bytes(b"\x01\x00")  # truncated
    merged: list[list[str]] = []
    merge = observability._merge

    def recorded(files: list[str]) -> Iterable[Metric]:
        merged.append([Path(name).name for name in files])
        return merge(files)

    monkeypatch.setattr(observability, "_merge", recorded)
    monkeypatch.setenv(MULTIPROCESS_DIR, str(folder))
    with TestClient(create_app(Settings(), artifact)) as client:
        for _ in range(3):
            answer = client.get("/metrics")
            assert answer.status_code == 200
            assert "probe_total 5.0" in answer.text
        assert [bad.name] in merged  # tested alone, once
        assert merged[-2:] == [[good.name], [good.name]]  # then merged once a scrape, without it
        bad.write_bytes(b"\x01\x00\x00")  # changed: read again, still bad, still no 500
        merged.clear()
        assert client.get("/metrics").status_code == 200
        assert [bad.name] in merged
        bad.write_bytes(good.read_bytes())  # now a real one: counted
        assert "probe_total 10.0" in client.get("/metrics").text
    assert capfd.readouterr().err.count("not a metrics file prometheus_client can read") == 1


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_the_uvicorn_factory_checks_the_metrics_dir_too(
    artifact_path: Path, tmp_path: Path, kind: str
) -> None:
    """Built by uvicorn's factory (``serving.app:app_from_env``, as a worker or a deployment
    does), or with the folder removed after ``serve`` checked it: one error line and uvicorn's
    start-up failure exit code (3), not a FileNotFoundError traceback."""
    folder = tmp_path / "metrics"
    if kind == "a file":
        folder.write_text("not a folder")
    command = ["-m", "uvicorn", "serving.app:app_from_env", "--factory", "--port", "0"]
    env = {"SERVING_ARTIFACT": str(artifact_path), MULTIPROCESS_DIR: str(folder)}
    result = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    errors = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (error,) = [e for e in errors if e["level"] == "error"]
    assert error["message"].startswith(f"{MULTIPROCESS_DIR}={folder}: "), error
