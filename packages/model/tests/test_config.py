import subprocess
import sys
from pathlib import Path

import pytest

from model import ConfigError, Gate, TrainConfig
from model.estimators import HistGradientBoosting, Linear, RandomForest

GOOD = """
name = "demo"
spec = "spec.toml"
data = "table.csv"
[estimator]
kind = "random_forest"
n_estimators = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_demo_configs(species_config: TrainConfig, body_mass_config: TrainConfig) -> None:
    assert species_config.estimator.kind == "linear"
    assert species_config.gate.min_balanced_accuracy == 0.95
    assert species_config.data.is_file()
    assert species_config.spec.is_file()
    assert body_mass_config.gate.max_rmse == 400.0


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    config = TrainConfig.from_toml(write(tmp_path, GOOD))
    assert config.spec == tmp_path / "spec.toml"
    assert config.data == tmp_path / "table.csv"
    assert isinstance(config.estimator, RandomForest)
    assert config.estimator.n_estimators == 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('kind = "random_forest"', 'kind = "svm"'),
            "estimator: Input tag 'svm' found using 'kind'",
        ),
        (
            ("n_estimators = 10", "n_estimators = 0"),
            "estimator.random_forest.n_estimators: Input should be greater than or equal to 1",
        ),
        (
            ("n_estimators = 10", "n_trees = 10"),
            "estimator.random_forest.n_trees: Extra inputs are not permitted",
        ),
        (
            ('data = "table.csv"', 'data = "table.xlsx"'),
            "data must be a .csv or .parquet file, got 'table.xlsx'",
        ),
        (('name = "demo"', 'name = "Demo Model"'), "name: String should match pattern"),
        (
            ('name = "demo"', 'name = "demo"\ntest_size = 1.5'),
            "test_size: Input should be less than 1",
        ),
        (
            ('name = "demo"', 'name = "demo"\ncv_folds = 1'),
            "cv_folds: Input should be greater than or equal to 2",
        ),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_toml(path)
    assert str(caught.value).startswith(f"{path}: invalid training config:")
    assert message in str(caught.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training config not found"):
        TrainConfig.from_toml(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(write(tmp_path, "name = "))


def test_gate_failures() -> None:
    gate = Gate(min_balanced_accuracy=0.9, max_rmse=10.0)
    assert gate.failures({"balanced_accuracy": 0.95}) == [
        "rmse is not measured for this task but the gate needs it"
    ]
    assert gate.failures({"balanced_accuracy": 0.5, "rmse": 20.0}) == [
        "balanced_accuracy 0.5000 is not >= 0.9",
        "rmse 20.0000 is not <= 10.0",
    ]
    assert Gate().failures({"accuracy": 0.0}) == []


@pytest.mark.parametrize(
    "estimator",
    [
        Linear(kind="linear"),
        RandomForest(kind="random_forest"),
        HistGradientBoosting(kind="hist_gradient_boosting"),
    ],
)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_registry_builds_seeded_estimators(estimator, task: str) -> None:
    built = estimator.build(task, seed=7)
    assert built.get_params()["random_state"] == 7
    assert (
        "Classifier" in type(built).__name__ or type(built).__name__ == "LogisticRegression"
    ) == (task == "classification")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[gate]\nmax_rmse = 10.0", "gate.max_rmse needs rmse, which a classification model"),
        ("[gate]\nmin_r2 = 0.5", "gate.min_r2 needs r2, which a classification model"),
        ('[estimator]\nkind = "linear"\nalpha = 2.0', "option 'alpha' does not apply"),
        ('data = "nowhere.csv"', "data file"),
    ],
)
def test_config_mistakes_stop_before_training(
    workspace: Path, tmp_path: Path, toml: str, message: str
) -> None:
    """Mistakes a config shows without its data are reported at once, by a process that never
    imports scikit-learn (so in well under the seconds that import takes)."""
    data = "" if toml.startswith("data") else f'data = "{workspace / "data" / "penguins.csv"}"'
    estimator = "" if "[estimator]" in toml else '[estimator]\nkind = "linear"'
    spec = workspace / "configs" / "penguins_species.features.toml"
    config = tmp_path / "config.toml"
    config.write_text(f'name = "penguins-species"\nspec = "{spec}"\n{data}\n{toml}\n{estimator}\n')
    argv = ["train", "--config", str(config), "--output", str(tmp_path / "a")]
    script = (
        "import sys\nfrom model.cli import main\n"
        f"code = main({argv!r})\n"
        "assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules, 'imported'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: penguins-species: cannot train:")
    assert message in result.stderr
    assert not (tmp_path / "a").exists()
