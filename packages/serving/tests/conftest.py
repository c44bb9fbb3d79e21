import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from model import Artifact, TrainConfig, load_artifact, save_result, train
from serving.app import create_app
from serving.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def workspace() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifact_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    return save_result(result, tmp_path_factory.mktemp("artifacts") / "species")


@pytest.fixture(scope="session")
def regression_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_body_mass.toml"))
    return save_result(result, tmp_path_factory.mktemp("artifacts") / "mass")


@pytest.fixture(scope="session")
def artifact(artifact_path: Path) -> Artifact:
    return load_artifact(artifact_path)


@pytest.fixture
def client(artifact: Artifact) -> Iterator[TestClient]:
    settings = Settings(max_records=50, max_body_bytes=20_000)
    with TestClient(create_app(settings, artifact)) as test_client:
        yield test_client


@pytest.fixture
def penguins() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "penguins.csv")


@pytest.fixture
def record() -> dict[str, Any]:
    return {
        "island": "Dream",
        "bill_length_mm": 46.5,
        "bill_depth_mm": 17.9,
        "flipper_length_mm": 192,
        "body_mass_g": 3500,
        "sex": "female",
    }


def records_of(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """JSON-ready records: NaN becomes null."""
    return json.loads(frame[columns].to_json(orient="records"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real `serving serve` process on a loopback port."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture
def server(artifact_path: Path, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "serving.cli",
        "serve",
        "--artifact",
        str(artifact_path),
        "--port",
        str(port),
    ]
    log = tmp_path / "server.log"
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    live = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited early: {log.read_text()}")
            try:
                if live.request("/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("server did not become ready in 60 s")
        yield live
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
