"""Publishing round trip with real parts: a local pypiserver that requires authentication for
reads as well as uploads and has no fallback to PyPI, the project's own publish flow, and a
consumer project outside the workspace that installs `serving` from that index (authenticating
with uv's UV_INDEX_PRIVATE_* variables) and scores a file with the bundled model."""

import base64
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from model import TrainConfig, train
from serving.testing import free_port

from .conftest import GIT, ROOT

USER, PASSWORD = "releaser", "correct horse battery staple"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


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
    """pypiserver on a free loopback port, serving ``tmp_path / "index"``."""
    with pypiserver(tmp_path) as url:
        yield url


@contextlib.contextmanager
def pypiserver(tmp_path: Path) -> Iterator[str]:
    """pypiserver on a free loopback port, serving ``tmp_path / "index"``; uploads, listings
    and downloads need a password; started and stopped here."""
    tmp_path.mkdir(exist_ok=True)
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
                "update,download,list",
                "--disable-fallback",
                str(packages),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        request = urllib.request.Request(f"{url}/simple/", headers={"Authorization": AUTH})
        for _ in range(300):
            try:
                urllib.request.urlopen(request, timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"pypiserver did not start: {(tmp_path / 'index.log').read_text()}")
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"{url}/simple/", timeout=5).close()
        anonymous.value.close()
        assert anonymous.value.code == 401  # reads need a password too
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def publish(
    repo: Path, index: str, password: str, index_password: str = PASSWORD, *options: str
) -> subprocess.CompletedProcess[str]:
    env = clean_env(
        UV_PUBLISH_URL=f"{index}/",
        UV_PUBLISH_USERNAME=USER,
        UV_PUBLISH_PASSWORD=password,
        UV_INDEX_PRIVATE_URL=f"{index}/simple/",
        UV_INDEX_PRIVATE_USERNAME=USER,
        UV_INDEX_PRIVATE_PASSWORD=index_password,
        GIT_COMMITTER_NAME="Release Test",
        GIT_COMMITTER_EMAIL="release@test.invalid",
        GIT_AUTHOR_NAME="Release Test",
        GIT_AUTHOR_EMAIL="release@test.invalid",
    )
    return subprocess.run(
        [sys.executable, "tools/release.py", "publish", *options],
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
    uploaded_to = tmp_path / "index"
    wrong_index = publish(repo, index, PASSWORD, index_password="wrong index password")
    assert wrong_index.returncode == 1
    assert re.fullmatch(
        r"error: the index answered HTTP 40[13] for features; check UV_INDEX_PRIVATE_URL "
        r"and UV_INDEX_PRIVATE_USERNAME/_PASSWORD\n",
        wrong_index.stderr,
    ), wrong_index.stderr
    assert "wrong index password" not in wrong_index.stdout + wrong_index.stderr
    assert list(uploaded_to.iterdir()) == []  # refused before building or uploading anything
    assert list((repo / "dist").iterdir()) == [repo / "dist" / ".made-by-release-tool"]

    wrong = publish(repo, index, "wrong password")
    assert wrong.returncode == 1
    assert "features 0.1.0: upload refused" in wrong.stderr
    assert "wrong password" not in wrong.stdout + wrong.stderr
    assert list(uploaded_to.iterdir()) == []

    first = publish(repo, index, PASSWORD)
    assert first.returncode == 0, first.stderr
    for name in ("features", "model", "serving"):
        assert f"{name} 0.1.0: published" in first.stdout
    tags = subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True, check=True)
    assert tags.stdout.split() == ["features-v0.1.0", "model-v0.1.0", "serving-v0.1.0"]
    uploaded = sorted(p.name for p in uploaded_to.iterdir())
    assert len(uploaded) == 6
    for name in ("features", "model", "serving"):  # each release's SBOM, beside its wheel
        sbom = json.loads((repo / "dist" / f"{name}-0.1.0.cdx.json").read_text())
        assert sbom["metadata"]["component"]["version"] == "0.1.0"
        assert f"{name} 0.1.0: published (SBOM {name}-0.1.0.cdx.json" in first.stdout

    again = publish(repo, index, PASSWORD)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already on the index, skipped") == 3
    assert sorted(p.name for p in uploaded_to.iterdir()) == uploaded

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "pyproject.toml").write_text(CONSUMER.format(index=index))
    anonymous = subprocess.run(
        ["uv", "sync", "--quiet", "--python", sys.executable],
        cwd=consumer,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert anonymous.returncode != 0, "the index served a read without credentials"
    assert "401" in anonymous.stderr, anonymous.stderr
    # uv reads the credentials of the index named `private` from these variables
    consumer_env = clean_env(UV_INDEX_PRIVATE_USERNAME=USER, UV_INDEX_PRIVATE_PASSWORD=PASSWORD)
    subprocess.run(
        ["uv", "sync", "--quiet", "--python", sys.executable],
        cwd=consumer,
        env=consumer_env,
        check=True,
        timeout=600,
    )
    penguins_csv, output = ROOT / "data" / "penguins.csv", tmp_path / "scores.csv"
    uv_run = ["uv", "run", "--python", sys.executable, "--locked"]
    scored = subprocess.run(
        [*uv_run, "serving", "score", penguins_csv, output],
        cwd=consumer,
        env=consumer_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "344 input rows = 344 scored + 0 rejected" in scored.stdout

    expected = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    penguins = pd.read_csv(penguins_csv)
    features = penguins[expected.spec.feature_names]
    assert pd.read_csv(output)["prediction"].tolist() == list(expected.pipeline.predict(features))


def test_same_release_to_a_second_index_and_a_moved_tag(snapshot: Path, tmp_path: Path) -> None:
    """Tags that exist and point at this commit do not stop a publish to another index (it
    uploads what that index lacks); a tag that points elsewhere stops it before any upload."""
    with (
        pypiserver(tmp_path / "first") as first,
        pypiserver(tmp_path / "second") as second,
        pypiserver(tmp_path / "third") as third,
    ):
        assert publish(snapshot, first, PASSWORD).returncode == 0
        tagged = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=snapshot, capture_output=True, text=True, check=True
        ).stdout.strip()

        again = publish(snapshot, second, PASSWORD)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count(": published") == 3
        assert "tagged" not in again.stdout
        assert len(list((tmp_path / "second" / "index").iterdir())) == 6

        readme = snapshot / "README.md"
        readme.write_text(readme.read_text() + "\nmoved on\n")
        subprocess.run([*GIT, "commit", "-qam", "later"], cwd=snapshot, check=True)
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=snapshot, capture_output=True, text=True, check=True
        ).stdout.strip()
        moved = publish(snapshot, third, PASSWORD)
        assert moved.returncode == 1
        assert f"tag features-v0.1.0 points at commit {tagged}" in moved.stderr
        assert f"the commit being published is {head}" in moved.stderr
        assert list((tmp_path / "third" / "index").iterdir()) == []


def test_another_build_of_an_untagged_version_is_never_overwritten(
    snapshot: Path, tmp_path: Path
) -> None:
    """Without the release tag, the index's file of the same name is another build (the model
    wheel bundles a freshly trained artifact): uv's check refuses it, nothing is replaced."""
    with pypiserver(tmp_path) as index:
        first = publish(snapshot, index, PASSWORD, PASSWORD, "--no-tag")
        assert first.returncode == 0, first.stderr
        held = {p.name: p.read_bytes() for p in (tmp_path / "index").iterdir()}
        again = publish(snapshot, index, PASSWORD, PASSWORD, "--no-tag")
        assert again.returncode == 1
        assert again.stderr.startswith("error: model 0.1.0: upload refused: ")
        assert "the index holds another build of this version: bump the version" in again.stderr
        assert {p.name: p.read_bytes() for p in (tmp_path / "index").iterdir()} == held
