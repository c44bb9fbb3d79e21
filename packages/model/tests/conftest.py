import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from model import (
    Artifact,
    HistGradientBoosting,
    Linear,
    RandomForest,
    TrainConfig,
    TrainResult,
    load_artifact,
    save_result,
    train,
)

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs"


@pytest.fixture(scope="session")
def workspace() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def species_config() -> TrainConfig:
    return TrainConfig.from_toml(CONFIGS / "penguins_species.toml")


@pytest.fixture(scope="session")
def body_mass_config() -> TrainConfig:
    return TrainConfig.from_toml(CONFIGS / "penguins_body_mass.toml")


@pytest.fixture(scope="session")
def species_result(species_config: TrainConfig) -> TrainResult:
    return train(species_config)


@pytest.fixture(scope="session")
def saved(species_result: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pristine artifact; tests that tamper copy it first (see ``copy``)."""
    return save_result(species_result, tmp_path_factory.mktemp("artifacts") / "species")


@pytest.fixture(scope="session")
def trained(
    species_config: TrainConfig,
    body_mass_config: TrainConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], tuple[TrainResult, Path]]:
    """``trained(kind, task)``: a small model of each estimator kind for each task, trained
    and saved once per session, with the folder of its artifact."""
    done: dict[tuple[str, str], tuple[TrainResult, Path]] = {}
    estimators = {
        "linear": Linear(kind="linear"),
        "random_forest": RandomForest(kind="random_forest", n_estimators=15),
        "hist_gradient_boosting": HistGradientBoosting(kind="hist_gradient_boosting", max_iter=15),
    }

    def get(kind: str, task: str) -> tuple[TrainResult, Path]:
        if (kind, task) not in done:
            config = species_config if task == "classification" else body_mass_config
            result = train(config.model_copy(update={"estimator": estimators[kind]}))
            folder = tmp_path_factory.mktemp("trained") / f"{kind}-{task}"
            done[kind, task] = result, save_result(result, folder)
        return done[kind, task]

    return get


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    """A copy of the pristine artifact, for tests that tamper with it."""
    target = tmp_path / "artifact"
    shutil.copytree(saved, target)
    return target


@pytest.fixture
def artifact(saved: Path) -> Artifact:
    return load_artifact(saved)


@pytest.fixture
def penguins() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "penguins.csv")


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the workspace root, where configs/ and data/ are."""
    monkeypatch.chdir(workspace)
    return workspace
