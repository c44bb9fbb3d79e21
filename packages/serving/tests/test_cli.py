from pathlib import Path

import pandas as pd
import pytest

from serving.cli import main

from .conftest import ROOT


def test_score_command(
    artifact_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "scores.parquet"
    code = main(
        [
            "score",
            str(ROOT / "data" / "penguins.csv"),
            str(output),
            "--artifact",
            str(artifact_path),
            "--chunk-rows",
            "64",
        ]
    )
    assert code == 0
    assert "344 input rows = 344 scored + 0 rejected" in capsys.readouterr().out
    assert len(pd.read_parquet(output)) == 344


def test_score_command_errors(
    artifact_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "score",
            str(tmp_path / "nope.csv"),
            str(tmp_path / "out.csv"),
            "--artifact",
            str(artifact_path),
        ]
    )
    assert code == 1
    assert "nope.csv: input file not found" in capsys.readouterr().err
    assert main(["score", "a.csv", "b.csv", "--artifact", str(tmp_path)]) == 1
    assert "not a model artifact" in capsys.readouterr().err


def test_bad_settings_are_an_error(artifact_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--artifact", str(artifact_path), "--port", "70000"]) == 1
    assert "invalid settings" in capsys.readouterr().err
