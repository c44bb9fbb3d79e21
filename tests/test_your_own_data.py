"""docs/your-own-data.md, run as written in an empty folder holding a generated churn table.

Files under ``<!-- guide: file NAME -->`` are written, bash blocks under
``<!-- guide: tested -->`` run in order with the installed commands. Two blocks cannot run
as they are: `serving serve` (it blocks) starts through ``ServerProcess`` with the guide's
arguments, and the curl's request (method, path, headers, body) is sent to that server.
"""

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema_rs
import numpy as np
import pandas as pd
import pytest

from features import FeatureSpec, validate
from serving.testing import ServerProcess

from .conftest import ROOT

GUIDE = ROOT / "docs" / "your-own-data.md"
BLOCK = re.compile(r"<!-- guide: (tested|file (\S+)) -->\n```(?:bash|toml)\n(.*?)```", re.DOTALL)
HEADER = "customer_id,tenure_months,monthly_charges,plan,support_calls,paperless,churned"
ROWS = 600


def write_churn_table(path: Path, rows: int = ROWS) -> None:
    """A seeded toy churn table: short tenure, high bills and support calls mean leaving."""
    rng = np.random.default_rng(7)
    tenure = rng.integers(1, 73, rows)
    charges = np.round(rng.uniform(20, 120, rows), 2)
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.5, 0.3, 0.2])
    calls = rng.poisson(1.5, rows)
    paperless = rng.random(rows) < 0.6
    logit = (
        1.0
        - 0.08 * tenure
        + 0.03 * (charges - 70)
        + 0.6 * calls
        + 0.5 * paperless
        + np.select([plan == "basic", plan == "premium"], [0.5, -0.8], 0.0)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    unknown_calls = rng.random(rows) < 0.05
    with path.open("w", newline="", encoding="utf-8") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(HEADER.split(","))
        for i in range(rows):
            writer.writerow(
                [
                    f"C{i + 1:04d}",
                    tenure[i],
                    charges[i],
                    plan[i],
                    "" if unknown_calls[i] else calls[i],
                    str(paperless[i]).lower(),
                    "yes" if churned[i] else "no",
                ]
            )


def guide_steps() -> list[tuple[str | None, str]]:
    """(file name, text) for each file block, (None, commands) for each tested bash block."""
    return [(name or None, text) for _, name, text in BLOCK.findall(GUIDE.read_text())]


def commands_of(block: str) -> list[str]:
    """A bash block's words, its line continuations joined as the shell joins them."""
    return shlex.split(block.replace("\\\n", " "))


def send_as_curl(server: ServerProcess, block: str) -> tuple[int, object]:
    """The guide's curl request, sent to ``server``; returns its status and JSON answer."""
    words = commands_of(block)
    assert words[:2] == ["curl", "-s"], block
    url = urlsplit(next(w for w in words if w.startswith("http://")))
    assert url.netloc == "127.0.0.1:8000", "the URL must be where `serving serve` listens"
    headers = [words[i + 1].lower() for i, w in enumerate(words) if w == "-H"]
    assert headers == ["content-type: application/json"]  # what ServerProcess.request sends
    body = json.loads(words[words.index("-d") + 1])
    return server.request(url.path, body)


def test_guide_blocks_are_found() -> None:
    steps = guide_steps()
    assert [name for name, _ in steps if name] == ["churn.features.toml", "churn.toml"]
    assert len([name for name, _ in steps if name is None]) == 5


def test_guide_sample_rows_are_valid_input(tmp_path: Path) -> None:
    """The CSV lines the guide shows have the test table's header and satisfy its spec."""
    text = GUIDE.read_text()
    sample = text.split("<!-- guide: sample of churn.csv -->\n```text\n", 1)[1].split("```")[0]
    assert sample.splitlines()[0] == HEADER
    spec_text = dict(guide_steps())["churn.features.toml"]
    (tmp_path / "spec.toml").write_text(spec_text)
    spec = FeatureSpec.from_toml(tmp_path / "spec.toml")
    frame = pd.read_csv(io.StringIO(sample))
    assert validate(spec, frame, target=True).report.n_invalid == 0


def test_guide_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the server resolves the guide's relative paths here too
    write_churn_table(tmp_path / "churn.csv")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    printed: list[str] = []
    answers: list[tuple[int, object]] = []
    with ExitStack() as stack:
        server: ServerProcess | None = None
        for name, text in guide_steps():
            if name is not None:
                (tmp_path / name).write_text(text, encoding="utf-8")
            elif text.startswith("serving serve"):
                args = commands_of(text)[2:]
                assert not {"--port", "--host"} & set(args)  # so the curl URL holds
                server = stack.enter_context(ServerProcess(args, log=tmp_path / "server.log"))
            elif text.startswith("curl"):
                assert server is not None, "the guide must start the server before the curl"
                answers.append(send_as_curl(server, text))
            else:
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", text],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert result.returncode == 0, f"{text}\n{result.stdout}\n{result.stderr}"
                printed.append(result.stdout)

    schemas, trained, scored = printed
    assert schemas == ""
    for file, schema in [
        ("churn.features.toml", "feature-spec.schema.json"),
        ("churn.toml", "training-config.schema.json"),
    ]:
        assert (tmp_path / schema).read_text() == (ROOT / "schemas" / schema).read_text()
        text = (tmp_path / file).read_text()
        assert text.splitlines()[0] == f"#:schema ./{schema}"
        validator = jsonschema_rs.validator_for(json.loads((tmp_path / schema).read_text()))
        assert validator.is_valid(tomllib.loads(text)), file

    assert f"churn: linear on {ROWS} rows (0 rejected by validation)" in trained
    assert "balanced_accuracy" in trained
    assert "written to artifacts/churn" in trained
    assert "classification (target churned)" in trained  # model info
    assert (tmp_path / "artifacts" / "churn" / "manifest.json").is_file()

    assert f"{ROWS} input rows = {ROWS} scored + 0 rejected" in scored
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == ROWS
    assert list(scores.columns) == [
        "row",
        "customer_id",
        "prediction",
        "probability_no",
        "probability_yes",
        "model_version",
    ]
    assert scores["customer_id"].tolist() == pd.read_csv("churn.csv")["customer_id"].tolist()

    ((status, body),) = answers
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["model"] == "churn"
    assert [p["prediction"] for p in body["predictions"]] == ["yes", "no"]  # as the guide says
