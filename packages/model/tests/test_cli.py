from collections.abc import Iterator
from pathlib import Path

import pytest

import model
from model import ArtifactError, load_artifact, load_default
from model.cli import main
from model.testing import bundle_set_aside


@pytest.fixture
def in_workspace(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workspace)
    return workspace


def test_train_default_demo(
    in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "species"
    assert main(["train", "--output", str(output)]) == 0
    text = capsys.readouterr().out
    assert "penguins-species: linear on 344 rows (0 rejected by validation)" in text
    assert "balanced_accuracy" in text
    assert f"written to {output}" in text.replace("\n", "")
    assert "predicts with NumPy (inference.json, checked against scikit-learn on" in text
    assert load_artifact(output).name == "penguins-species"


def test_train_regression_config(
    in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "mass"
    assert (
        main(["train", "--config", "configs/penguins_body_mass.toml", "--output", str(output)]) == 0
    )
    text = capsys.readouterr().out
    assert "(2 rejected by validation)" in text
    assert "body_mass_g: null not allowed (2 rows)" in text
    assert load_artifact(output).spec.task == "regression"


def test_quality_gate_failure_writes_nothing(
    in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "strict.toml"
    text = (in_workspace / "configs" / "penguins_body_mass.toml").read_text()
    text = text.replace("max_rmse = 400.0", "max_rmse = 1.0")
    text = text.replace(
        '"penguins_body_mass.features.toml"',
        repr(str(in_workspace / "configs" / "penguins_body_mass.features.toml")),
    )
    text = text.replace('"../data/penguins.csv"', repr(str(in_workspace / "data" / "penguins.csv")))
    config.write_text(text)
    output = tmp_path / "never"
    assert main(["train", "--config", str(config), "--output", str(output)]) == 3
    error = capsys.readouterr().err
    assert "quality gate failed, no artifact written: rmse" in error
    assert "is not <= 1.0" in error
    assert not output.exists()


def test_no_config_outside_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 1
    assert (
        "no --config given and configs/penguins_species.toml is not in the current directory"
        in (capsys.readouterr().err.replace("\n", " "))
    )


def test_info_and_evaluate(
    saved: Path, in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(saved)]) == 0
    info = capsys.readouterr().out
    assert "penguins-species" in info
    assert "classification (target species)" in info
    assert main(["evaluate", str(saved), "--data", "data/penguins.csv"]) == 0
    evaluated = capsys.readouterr().out
    assert "344 rows scored, 0 rejected" in evaluated
    assert "balanced_accuracy" in evaluated


def test_refused_artifact_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path)]) == 1
    assert "not a model artifact (no manifest.json)" in capsys.readouterr().err


@pytest.fixture
def no_bundle() -> Iterator[Path]:
    with bundle_set_aside() as bundle:
        yield bundle


def test_plain_train_makes_the_bundled_default(
    no_bundle: Path, in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ArtifactError, match="no default artifact is bundled"):
        load_default()
    assert main(["train"]) == 0
    assert (
        "(the default artifact: `serving serve` and `model info` use it)" in capsys.readouterr().out
    )
    bundled = load_default()
    assert bundled.path == no_bundle
    assert bundled.name == "penguins-species"
    assert bundled.manifest.versions["model"] == model.__version__
    assert main(["info"]) == 0


def test_bundle_any_config(no_bundle: Path, in_workspace: Path) -> None:
    assert main(["train", "--config", "configs/penguins_body_mass.toml", "--bundle"]) == 0
    assert load_default().name == "penguins-body-mass"
