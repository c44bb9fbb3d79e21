from pathlib import Path

import pandas as pd
import pytest

from features import FeatureSpec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def workspace() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    return FeatureSpec.from_toml(ROOT / "configs" / "penguins_species.features.toml")


@pytest.fixture(scope="session")
def regression_spec() -> FeatureSpec:
    return FeatureSpec.from_toml(ROOT / "configs" / "penguins_body_mass.features.toml")


@pytest.fixture
def penguins() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "penguins.csv")


@pytest.fixture
def record() -> dict[str, object]:
    return {
        "island": "Dream",
        "bill_length_mm": 46.5,
        "bill_depth_mm": 17.9,
        "flipper_length_mm": 192,
        "body_mass_g": 3500,
        "sex": "female",
    }
