"""`serving serve --workers N` serves one model: each worker loads the folder the parent
verified and refuses it unless its manifest is still the one the parent read."""

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from model import ArtifactError, load_artifact
from model.testing import rewrite_manifest
from serving.app import app_from_env, load
from serving.settings import Settings
from serving.testing import ServerProcess, wait_until

STARTED = re.compile(r"Started server process \[(\d+)\]")


def replace_in_place(folder: Path) -> None:
    """Another model in the same folder: here, its metrics rewritten (and so its version)."""
    metrics = json.loads((folder / "manifest.json").read_text())["metrics"]
    rewrite_manifest(folder, metrics={**metrics, "accuracy": 0.5})


def test_a_setting_digest_refuses_any_other_artifact(artifact_path: Path, tmp_path: Path) -> None:
    digest = load_artifact(artifact_path).digest
    assert load(Settings(artifact=artifact_path, artifact_digest=digest)).digest == digest
    copy = tmp_path / "artifact"
    shutil.copytree(artifact_path, copy)
    replace_in_place(copy)
    with pytest.raises(ArtifactError, match="not the artifact this service started with"):
        load(Settings(artifact=copy, artifact_digest=digest))


def test_a_worker_that_refuses_its_artifact_fails_to_start_in_one_line(
    artifact_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit code 3 is uvicorn's 'failed to start': the service stops instead of restarting
    the worker again and again. The reason is one log line, no traceback."""
    copy = tmp_path / "artifact"
    shutil.copytree(artifact_path, copy)
    monkeypatch.setenv("SERVING_ARTIFACT", str(copy))
    monkeypatch.setenv("SERVING_ARTIFACT_DIGEST", load_artifact(copy).digest)
    replace_in_place(copy)
    with pytest.raises(SystemExit) as stop:
        app_from_env()
    assert stop.value.code == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["message"].startswith(f"{copy}: not the artifact this service started with")


def test_a_worker_started_after_the_artifact_was_replaced_stops_the_service(
    artifact_path: Path, tmp_path: Path
) -> None:
    """A worker uvicorn restarts (one was killed) after the folder was replaced in place does
    not serve the new model beside the old one: it refuses it, the service stops and says why.
    The artifact was given through a deploy link, resolved once by the parent."""
    release = tmp_path / "v1"
    shutil.copytree(artifact_path, release)
    (tmp_path / "current").symlink_to(release, target_is_directory=True)
    log = tmp_path / "service.log"
    server = ServerProcess(["--artifact", str(tmp_path / "current"), "--workers", "2"], log=log)
    with server:
        wait_until(lambda: len(STARTED.findall(log.read_text())) == 2, "both workers")
        replace_in_place(release)
        os.kill(int(STARTED.findall(log.read_text())[0]), signal.SIGKILL)
        assert server.process is not None
        wait_until(lambda: server.process.poll() is not None, "the service to stop")
    assert server.process.returncode == 1
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith(f"error: {release}: not the artifact this service started with")
