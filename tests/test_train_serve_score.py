"""The README's path with real parts: `model train`, then `serving serve` and `serving score`
with no artifact named, all finding the trained default model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from features import validate
from model import load_default
from serving.testing import ServerProcess

from .conftest import ROOT


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def test_train_then_serve_then_score(fresh_bundle: Path, tmp_path: Path) -> None:
    trained = run("model.cli", "train")
    assert "written to" in trained.stdout
    assert (fresh_bundle / "manifest.json").is_file()
    model = load_default()
    penguins = pd.read_csv(ROOT / "data" / "penguins.csv")
    expected = model.predict(validate(model.spec, penguins).valid)

    with ServerProcess([], log=tmp_path / "server.log") as server:
        status, ready = server.request("/ready")
        assert (status, ready["version"]) == (200, model.version)
        records = json.loads(penguins[model.spec.feature_names].to_json(orient="records"))
        status, body = server.request("/v1/predict", {"records": records})
    assert status == 200
    assert [p["prediction"] for p in body["predictions"]] == expected.labels.tolist()
    served = np.array([list(p["probabilities"].values()) for p in body["predictions"]])
    np.testing.assert_allclose(served, expected.probabilities, rtol=1e-12)

    output = tmp_path / "scores.parquet"
    summary = run("serving.cli", "score", str(ROOT / "data" / "penguins.csv"), str(output))
    assert "344 input rows = 344 scored + 0 rejected" in summary.stdout
    scored = pd.read_parquet(output)
    assert scored["prediction"].tolist() == expected.labels.tolist()
    adelie = model.classes.index("Adelie")
    np.testing.assert_allclose(scored["probability_Adelie"], expected.probabilities[:, adelie])
    assert set(scored["model_version"]) == {model.version}


def test_serve_with_no_model_anywhere_says_what_to_do(fresh_bundle: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "serve", "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "no default artifact is bundled in this installation of model" in result.stderr
    assert "Traceback" not in result.stderr
