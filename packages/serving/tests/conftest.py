import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features import validate
from model import Artifact, Prediction, TrainConfig, load_artifact, save_result, train
from serving.app import create_app
from serving.settings import Settings
from serving.testing import ServerProcess

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


RECORD: dict[str, Any] = {
    "island": "Dream",
    "bill_length_mm": 46.5,
    "bill_depth_mm": 17.9,
    "flipper_length_mm": 192,
    "body_mass_g": 3500,
    "sex": "female",
}
"""A valid record of the penguins species model."""


@pytest.fixture
def record() -> dict[str, Any]:
    return dict(RECORD)


def predicted(artifact: Artifact, frame: pd.DataFrame) -> Prediction:
    """In-process predictions for every row of ``frame``, which must all be valid."""
    result = validate(artifact.spec, frame)
    assert result.report.n_invalid == 0, result.report.summary()
    return artifact.predict(result.valid)


def records_of(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """JSON-ready records: NaN becomes null."""
    return json.loads(frame[columns].to_json(orient="records"))


@pytest.fixture
def server(artifact_path: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(["--artifact", str(artifact_path)], log=tmp_path / "server.log") as live:
        yield live
