"""Publishing round trip with real parts: a local pypiserver with upload authentication and no
fallback to PyPI, the project's own publish flow, and a consumer project outside the workspace
that installs `serving` from that index and scores a file with the bundled model."""

import base64
import hashlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from model import TrainConfig, train
from serving.testing import free_port

from .conftest import ROOT

USER, PASSWORD = "releaser", "correct horse battery staple"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus what ties uv to the tox env or to a real index."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV"}
        and not k.startswith("UV_PUBLISH")
        and not k.startswith("UV_INDEX")
    }
    return {**env, **extra}


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    """pypiserver on a free loopback port; uploads need a password; started and stopped here."""
    packages = tmp_path / "index"
    packages.mkdir()
    digest = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    (tmp_path / "htpasswd").write_text(f"{USER}:{{SHA}}{digest}\n")  # htpasswd -s format
    port = free_port()
    with (tmp_path / "index.log").open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pypiserver",
                "run",
                "-p",
                str(port),
                "-i",
                "127.0.0.1",
                "-P",
                str(tmp_path / "htpasswd"),
                "-a",
                "update",
                "--disable-fallback",
                str(packages),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/simple/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"pypiserver did not start: {(tmp_path / 'index.log').read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def publish(repo: Path, index: str, password: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(
        UV_PUBLISH_URL=f"{index}/",
        UV_PUBLISH_USERNAME=USER,
        UV_PUBLISH_PASSWORD=password,
        UV_INDEX_PRIVATE_URL=f"{index}/simple/",
        GIT_COMMITTER_NAME="Release Test",
        GIT_COMMITTER_EMAIL="release@test.invalid",
        GIT_AUTHOR_NAME="Release Test",
        GIT_AUTHOR_EMAIL="release@test.invalid",
    )
    return subprocess.run(
        [sys.executable, "tools/release.py", "publish"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


CONSUMER = """\
[project]
name = "consumer"
version = "0"
requires-python = ">=3.11"
# uv honours an index pin only for a direct dependency: name the siblings too.
dependencies = ["serving", "model", "features"]

[tool.uv]
package = false

[[tool.uv.index]]
name = "private"
url = "{index}/simple/"
explicit = true

[tool.uv.sources]
serving = {{ index = "private" }}
model = {{ index = "private" }}
features = {{ index = "private" }}
"""


def test_publish_install_score(index: str, snapshot: Path, tmp_path: Path) -> None:
    repo = snapshot
    wrong = publish(repo, index, "wrong password")
    assert wrong.returncode == 1
    assert "features 0.1.0: upload refused" in wrong.stderr
    assert "wrong password" not in wrong.stdout + wrong.stderr

    first = publish(repo, index, PASSWORD)
    assert first.returncode == 0, first.stderr
    for name in ("features", "model", "serving"):
        assert f"{name} 0.1.0: published" in first.stdout
    tags = subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True, check=True)
    assert tags.stdout.split() == ["features-v0.1.0", "model-v0.1.0", "serving-v0.1.0"]
    uploaded = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert len(uploaded) == 6

    again = publish(repo, index, PASSWORD)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already on the index, skipped") == 3
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == uploaded

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "pyproject.toml").write_text(CONSUMER.format(index=index))
    subprocess.run(
        ["uv", "sync", "--quiet", "--python", sys.executable],
        cwd=consumer,
        env=clean_env(),
        check=True,
        timeout=600,
    )
    output = tmp_path / "scores.csv"
    scored = subprocess.run(
        [consumer / ".venv" / "bin" / "serving", "score", ROOT / "data" / "penguins.csv", output],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "344 input rows = 344 scored + 0 rejected" in scored.stdout

    expected = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    penguins = pd.read_csv(ROOT / "data" / "penguins.csv")
    features = penguins[expected.spec.feature_names]
    assert pd.read_csv(output)["prediction"].tolist() == list(expected.pipeline.predict(features))
