"""Publishing with real parts: a local pypiserver that requires authentication for reads as well
as uploads and has no fallback to PyPI; the release tool run as a maintainer runs it (`uv run` in
a throwaway copy of the workspace, so its environment holds the versions being released) through
histories of several packages and releases; and a consumer project outside the workspace,
written and run as docs/publishing.md shows, that installs `serving` from that index and
scores a file with the bundled model."""

import base64
import contextlib
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from model import TrainConfig, train
from serving.testing import free_port, wait_until

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


def answers(request: urllib.request.Request) -> bool:
    try:
        urllib.request.urlopen(request, timeout=2).close()
    except OSError:
        return False
    return True


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
        wait_until(lambda: answers(request) or process.poll() is not None, "pypiserver", 120)
        assert process.poll() is None, (tmp_path / "index.log").read_text()
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"{url}/simple/", timeout=5).close()
        anonymous.value.close()
        assert anonymous.value.code == 401  # reads need a password too
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def held(folder: Path) -> list[str]:
    """The files an index holds."""
    return sorted(p.name for p in (folder / "index").iterdir())


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def tags(repo: Path) -> list[str]:
    return git(repo, "tag").split()


def release_tool(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``uv run python tools/release.py ARGS`` in ``repo``: uv syncs the copy's own environment
    first, as for a maintainer, so it holds the versions being released."""
    return subprocess.run(
        ["uv", "run", "--quiet", "--locked", "--no-dev", "--python", sys.executable, "python",
         "tools/release.py", *args],
        cwd=repo, env=env, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip


def publish_env(
    index: str, password: str = PASSWORD, index_password: str = PASSWORD
) -> dict[str, str]:
    return clean_env(
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


def publish(
    repo: Path, index: str, password: str = PASSWORD, index_password: str = PASSWORD, *options: str
) -> subprocess.CompletedProcess[str]:
    return release_tool(repo, "publish", *options, env=publish_env(index, password, index_password))


def bump(repo: Path, name: str, part: str, note: str) -> str:
    """A change fragment saying ``note``, then ``tools/release.py bump``; returns its output."""
    (repo / "packages" / name / "changes" / f"+{part}-{name}.misc.md").write_text(note)
    bumped = release_tool(repo, "bump", name, part, env=clean_env())
    assert bumped.returncode == 0, bumped.stderr
    return bumped.stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The tool's report without its first line (where it publishes to)."""
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith("publishing to http://127.0.0.1:")
    return rest


# --- the first release, and a consumer as the docs show ----------------------------------------


def docs_consumer() -> tuple[str, list[list[str]]]:
    """docs/publishing.md's consumer pyproject and the commands that follow it."""
    text = (ROOT / "docs" / "publishing.md").read_text().split("<!-- consumer:", 1)[1]
    pyproject = text.split("```toml\n", 1)[1].split("```", 1)[0]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return pyproject, [argv for argv in commands if argv]


def test_publish_install_score(index: str, snapshot: Path, tmp_path: Path) -> None:
    repo = snapshot
    wrong_index = publish(repo, index, PASSWORD, index_password="wrong index password")
    assert wrong_index.returncode == 1
    assert re.fullmatch(
        r"error: the index answered HTTP 40[13] for features; check UV_INDEX_PRIVATE_URL "
        r"and UV_INDEX_PRIVATE_USERNAME/_PASSWORD\n",
        wrong_index.stderr,
    ), wrong_index.stderr
    assert "wrong index password" not in wrong_index.stdout + wrong_index.stderr
    assert held(tmp_path) == []  # refused before building or uploading anything
    assert list((repo / "dist").iterdir()) == [repo / "dist" / ".made-by-release-tool"]

    wrong = publish(repo, index, "wrong password")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: features 0.1.0: upload refused: "), wrong.stderr
    assert wrong.stderr.count("\n") == 1, wrong.stderr  # uv's reason, not the server's page
    assert "wrong password" not in wrong.stdout + wrong.stderr
    assert held(tmp_path) == []
    assert tags(repo) == []

    first = lines_of(publish(repo, index))
    assert first == [
        line
        for name in ("features", "model", "serving")
        for line in (
            f"{name} 0.1.0: published (SBOM {name}-0.1.0.cdx.json)",
            f"{name} 0.1.0: tagged {name}-v0.1.0",
        )
    ]
    assert tags(repo) == ["features-v0.1.0", "model-v0.1.0", "serving-v0.1.0"]
    uploaded = held(tmp_path)
    assert len(uploaded) == 6
    for name in ("features", "model", "serving"):  # each release's SBOM, beside its wheel
        sbom = json.loads((repo / "dist" / f"{name}-0.1.0.cdx.json").read_text())
        assert sbom["metadata"]["component"]["version"] == "0.1.0"

    again = lines_of(publish(repo, index))
    assert again == [
        f"{name} 0.1.0: released ({name}-v0.1.0), unchanged since, on the index: skipped"
        for name in ("features", "model", "serving")
    ]
    assert held(tmp_path) == uploaded

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    install_and_run_as_the_docs_show(consumer, index, tmp_path)


def install_and_run_as_the_docs_show(consumer: Path, index: str, tmp_path: Path) -> None:
    """Write the docs' consumer pyproject and run its commands as written, with uv's own
    ``UV_INDEX=private=...`` pointing its placeholder at the local index; ``serve`` gets a free
    loopback port and is stopped once ready."""
    pyproject, commands = docs_consumer()
    (consumer / "pyproject.toml").write_text(pyproject)
    penguins_csv = ROOT / "data" / "penguins.csv"
    pd.read_csv(penguins_csv).to_parquet(consumer / "input.parquet")
    env = clean_env(UV_INDEX=f"private={index}/simple/", UV_PYTHON=sys.executable)
    sync = ["uv", "sync"]
    assert sync in commands
    anonymous = subprocess.run(
        sync, cwd=consumer, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert anonymous.returncode != 0, "the index served a read without credentials"
    assert "401" in anonymous.stderr, anonymous.stderr
    outputs = {}
    for argv in commands:
        if argv[0] == "export":  # the credentials uv reads for the index named `private`
            assert [a.split("=")[0] for a in argv[1:]] == [
                "UV_INDEX_PRIVATE_USERNAME",
                "UV_INDEX_PRIVATE_PASSWORD",
            ]
            env.update(UV_INDEX_PRIVATE_USERNAME=USER, UV_INDEX_PRIVATE_PASSWORD=PASSWORD)
        elif argv[:3] == ["uv", "run", "serving"] and argv[3] == "serve":
            serve_until_ready(argv, consumer, env, tmp_path / "serve.log")
        else:
            done = subprocess.run(
                argv,
                cwd=consumer,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            assert done.returncode == 0, f"{shlex.join(argv)}: {done.stderr}"
            outputs[shlex.join(argv)] = done.stdout
    lock = tomllib.loads((consumer / "uv.lock").read_text())
    sources = {p["name"]: p["source"] for p in lock["package"]}
    for name in ("features", "model", "serving"):  # from the private index only
        assert sources[name] == {"registry": f"{index}/simple/"}
    assert sources["numpy"] == {"registry": "https://pypi.org/simple"}
    assert "0.1.0" in outputs["uv run model info"]
    assert (
        "344 input rows = 344 scored + 0 rejected"
        in outputs["uv run serving score input.parquet scores.parquet"]
    )
    expected = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    features = pd.read_csv(penguins_csv)[expected.spec.feature_names]
    predictions = pd.read_parquet(consumer / "scores.parquet")["prediction"].tolist()
    assert predictions == list(expected.pipeline.predict(features))


def serve_until_ready(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    """Run the docs' ``serve`` command on a free loopback port until ``/ready`` answers 200."""
    argv = list(argv)
    port = free_port()
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    with log.open("wb") as output:
        server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        ready = f"http://127.0.0.1:{port}/ready"
        wait_until(
            lambda: answers(urllib.request.Request(ready)) or server.poll() is not None,
            "the consumer's service to be ready",
            300,
        )
        assert server.poll() is None, log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- release histories ------------------------------------------------------------------------


def test_independent_releases(snapshot: Path, tmp_path: Path) -> None:
    """After the first release only what changed is published: a dirty tree and an unbumped
    change are refused; model 0.1.1 alone; a run right after uploads nothing; a minor
    features release that widens model's and serving's ranges publishes all three, in order."""
    repo = snapshot
    with pypiserver(tmp_path) as index:
        lines_of(publish(repo, index))

        readme = repo / "packages" / "model" / "README.md"
        readme.write_text(readme.read_text() + "\nA note.\n")
        (repo / "packages" / "features" / "src" / "features" / "draft.py").write_text("x = 1\n")
        dirty = publish(repo, index)
        assert dirty.returncode == 1
        assert dirty.stderr == (
            "error: uncommitted changes in packages/features/src/features/draft.py, "
            "packages/model/README.md: only committed work is published; commit them (or "
            "stash them) and publish again (nothing was built)\n"
        )
        assert sorted(p.name for p in (repo / "dist").iterdir()) == [".made-by-release-tool"]

        (repo / "packages" / "features" / "src" / "features" / "draft.py").unlink()
        commit(repo, "a note on model")
        unbumped = publish(repo, index)
        assert unbumped.returncode == 1
        assert unbumped.stderr == (
            "error: model: changed since model-v0.1.0 but kept version 0.1.0 "
            "(packages/model/README.md); bump it: `tools/release.py bump model patch` "
            "(or minor, major); nothing was uploaded\n"
        )

        assert bump(repo, "model", "patch", "A note.") == (
            "model: 0.1.0 -> 0.1.1, CHANGELOG.md assembled from its change fragments\n"
        )
        commit(repo, "model 0.1.1")
        second = lines_of(publish(repo, index))
        assert second == [
            "features 0.1.0: released (features-v0.1.0), unchanged since, on the index: skipped",
            "model 0.1.1: published (SBOM model-0.1.1.cdx.json)",
            "model 0.1.1: tagged model-v0.1.1",
            "serving 0.1.0: released (serving-v0.1.0), unchanged since, on the index: skipped",
        ]
        after_second = held(tmp_path)
        assert len(after_second) == 8
        assert git(repo, "rev-parse", "model-v0.1.1^{commit}") == git(repo, "rev-parse", "HEAD")

        again = lines_of(publish(repo, index))
        assert all(line.endswith("unchanged since, on the index: skipped") for line in again)
        assert len(again) == 3
        assert held(tmp_path) == after_second
        assert sorted(p.name for p in (repo / "dist").iterdir()) == [".made-by-release-tool"]

        widened = bump(repo, "features", "minor", "Integer categories.")
        assert "model: requires features>=0.2,<0.3 (bump model too)" in widened
        assert "serving: requires features>=0.2,<0.3 (bump serving too)" in widened
        bump(repo, "model", "minor", "Requires features 0.2.")
        bump(repo, "serving", "patch", "Requires features 0.2 and model 0.2.")
        commit(repo, "features 0.2.0, model 0.2.0, serving 0.1.1")
        third = lines_of(publish(repo, index))
        assert third == [
            line
            for name, version in (("features", "0.2.0"), ("model", "0.2.0"), ("serving", "0.1.1"))
            for line in (
                f"{name} {version}: published (SBOM {name}-{version}.cdx.json)",
                f"{name} {version}: tagged {name}-v{version}",
            )
        ]
        assert len(held(tmp_path)) == 14
        with zipfile.ZipFile(tmp_path / "index" / "serving-0.1.1-py3-none-any.whl") as wheel:
            metadata = wheel.read("serving-0.1.1.dist-info/METADATA").decode()
        assert "Requires-Dist: features>=0.2,<0.3" in metadata
        assert "Requires-Dist: model>=0.2,<0.3" in metadata


def test_a_lock_only_change_releases_that_member_alone(snapshot: Path, tmp_path: Path) -> None:
    """A locked dependency that only serving uses moves: serving alone is refused until bumped,
    then published alone."""
    repo = snapshot
    with pypiserver(tmp_path) as index:
        lines_of(publish(repo, index))
        lock = tomllib.loads((repo / "uv.lock").read_text())
        (locked,) = [p["version"] for p in lock["package"] if p["name"] == "prometheus-client"]
        subprocess.run(
            ["uv", "lock", "--upgrade-package", f"prometheus-client<{locked}"],
            cwd=repo, env=clean_env(), capture_output=True, check=True, timeout=600,
        )  # fmt: skip
        lock = tomllib.loads((repo / "uv.lock").read_text())
        (older,) = [p["version"] for p in lock["package"] if p["name"] == "prometheus-client"]
        commit(repo, f"prometheus-client {older}")

        refused = publish(repo, index)
        assert refused.returncode == 1
        assert refused.stderr == (
            f"error: serving: changed since serving-v0.1.0 but kept version 0.1.0 (locked "
            f"prometheus-client {locked} -> {older}); bump it: `tools/release.py bump serving "
            "patch` (or minor, major); nothing was uploaded\n"
        )

        bump(repo, "serving", "patch", f"Built with prometheus-client {older}.")
        commit(repo, "serving 0.1.1")
        assert lines_of(publish(repo, index)) == [
            "features 0.1.0: released (features-v0.1.0), unchanged since, on the index: skipped",
            "model 0.1.0: released (model-v0.1.0), unchanged since, on the index: skipped",
            "serving 0.1.1: published (SBOM serving-0.1.1.cdx.json)",
            "serving 0.1.1: tagged serving-v0.1.1",
        ]
        sbom = json.loads((repo / "dist" / "serving-0.1.1.cdx.json").read_text())
        assert {"name": "prometheus-client", "version": older}.items() <= next(
            c for c in sbom["components"] if c["name"] == "prometheus-client"
        ).items()


def test_a_member_added_later_is_released_alone(snapshot: Path, tmp_path: Path) -> None:
    """A fourth member after the first release (the root pyproject and the lock change, no
    member's inputs do): its first release is published alone, after what it depends on."""
    repo = snapshot
    with pypiserver(tmp_path) as index:
        lines_of(publish(repo, index))
        made = subprocess.run(
            ["uv", "run", "--quiet", "--python", sys.executable, "python", "tools/new_package.py",
             "reports", "--depends-on", "model"],
            cwd=repo, env=clean_env(), capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        bump(repo, "reports", "patch", "Published.")
        commit(repo, "reports 0.1.1")
        assert lines_of(publish(repo, index)) == [
            "features 0.1.0: released (features-v0.1.0), unchanged since, on the index: skipped",
            "model 0.1.0: released (model-v0.1.0), unchanged since, on the index: skipped",
            "reports 0.1.1: published (SBOM reports-0.1.1.cdx.json)",
            "reports 0.1.1: tagged reports-v0.1.1",
            "serving 0.1.0: released (serving-v0.1.0), unchanged since, on the index: skipped",
        ]
        assert [f for f in held(tmp_path) if f.startswith("reports")] == [
            "reports-0.1.1-py3-none-any.whl",
            "reports-0.1.1.tar.gz",
        ]


def test_other_indexes_get_each_release_from_its_own_commit(snapshot: Path, tmp_path: Path) -> None:
    """The same releases go to a second index from the commit they are tagged on; from a later
    commit, a release the index lacks is never rebuilt: the tool names the command that
    publishes it from its tag, and that command does."""
    repo = snapshot
    with (
        pypiserver(tmp_path / "first") as first,
        pypiserver(tmp_path / "second") as second,
        pypiserver(tmp_path / "third") as third,
    ):
        lines_of(publish(repo, first))
        # same commit: uploads what that index lacks; uv's own variables, credentials and a
        # token written in the URLs, all of it shown masked
        userinfo = f"{USER}:{urllib.parse.quote(PASSWORD, safe='')}"
        token = "?token=query-token-9e2f"
        in_urls = release_tool(
            repo,
            "publish",
            env=clean_env(
                UV_PUBLISH_URL=f"{second.replace('//', f'//{userinfo}@')}/{token}",
                UV_INDEX=f"private={second.replace('//', f'//{userinfo}@')}/simple/{token}",
            ),
        )
        assert in_urls.returncode == 0, in_urls.stderr
        masked = second.replace("//", "//***@")
        assert in_urls.stdout.splitlines() == [
            f"publishing to {masked}/?***, reading {masked}/simple/?***",
            *(
                f"{name} 0.1.0: published (SBOM {name}-0.1.0.cdx.json)"
                for name in ("features", "model", "serving")
            ),
        ]
        for secret in (PASSWORD, urllib.parse.quote(PASSWORD, safe=""), "query-token-9e2f"):
            assert secret not in in_urls.stdout + in_urls.stderr
        assert len(held(tmp_path / "second")) == 6

        bump(repo, "model", "patch", "A fix.")
        commit(repo, "model 0.1.1")
        lines_of(publish(repo, first))
        later = lines_of(publish(repo, third))
        command = (
            "git worktree add --detach ../features-v0.1.0 features-v0.1.0 && "
            "cd ../features-v0.1.0 && tox -e publish"
        )
        assert later == [
            "features 0.1.0: released (features-v0.1.0), unchanged since; the index lacks "
            "features-0.1.0-py3-none-any.whl, features-0.1.0.tar.gz: publish it from its tag: "
            f"`{command}`",
            "model 0.1.1: published (SBOM model-0.1.1.cdx.json)",  # tagged on this commit
            "serving 0.1.0: released (serving-v0.1.0), unchanged since; the index lacks "
            "serving-0.1.0-py3-none-any.whl, serving-0.1.0.tar.gz: publish it from its tag: "
            "`git worktree add --detach ../serving-v0.1.0 serving-v0.1.0 && "
            "cd ../serving-v0.1.0 && tox -e publish`",
        ]
        assert held(tmp_path / "third") == ["model-0.1.1-py3-none-any.whl", "model-0.1.1.tar.gz"]

        add_worktree, change_dir, tox_publish = command.split(" && ")
        subprocess.run([*GIT, *shlex.split(add_worktree)[1:]], cwd=repo, check=True)
        assert tox_publish == "tox -e publish"  # what tox -e publish runs, in that checkout
        checkout = (repo / shlex.split(change_dir)[1]).resolve()
        assert lines_of(publish(checkout, third)) == [
            f"{name} 0.1.0: published (SBOM {name}-0.1.0.cdx.json)"
            for name in ("features", "model", "serving")
        ]
        assert len(held(tmp_path / "third")) == 8
        assert tags(repo) == [
            "features-v0.1.0",
            "model-v0.1.0",
            "model-v0.1.1",
            "serving-v0.1.0",
        ]


def test_another_build_of_an_untagged_version_is_never_overwritten(
    snapshot: Path, tmp_path: Path
) -> None:
    """Without the release tag, the index's file of the same name is another build (the model
    wheel bundles a freshly trained artifact): uv's check refuses it, nothing is replaced."""
    with pypiserver(tmp_path) as index:
        first = publish(snapshot, index, PASSWORD, PASSWORD, "--no-tag")
        assert first.returncode == 0, first.stderr
        files = {p.name: p.read_bytes() for p in (tmp_path / "index").iterdir()}
        again = publish(snapshot, index, PASSWORD, PASSWORD, "--no-tag")
        assert again.returncode == 1
        assert again.stderr.startswith("error: model 0.1.0: upload refused: ")
        assert "the index holds another build of this version: bump the version" in again.stderr
        assert {p.name: p.read_bytes() for p in (tmp_path / "index").iterdir()} == files
