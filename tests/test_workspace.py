"""Cross-package contract: the packages installed together agree on each other's versions."""

import importlib
import os
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import workspace

SIBLINGS = [(name, s) for name in workspace.order(ROOT) for s in workspace.sibling_names(name)]


@pytest.mark.parametrize(("package", "sibling"), SIBLINGS)
def test_sibling_range_admits_installed_version(package: str, sibling: str) -> None:
    requirements = [Requirement(r) for r in metadata.requires(package) or []]
    on_sibling = [r for r in requirements if r.name == sibling]  # its extras' too
    assert [r for r in on_sibling if r.marker is None], f"{package} must require {sibling}"
    for requirement in on_sibling:
        assert str(requirement.specifier), f"{package} must pin a version range for {sibling}"
        assert requirement.specifier.contains(metadata.version(sibling))


@pytest.mark.parametrize("name", workspace.order(ROOT))
def test_each_package_reports_its_version(name: str) -> None:
    assert importlib.import_module(name).__version__ == metadata.version(name)


def readme_block(marker: str) -> list[str]:
    """The commands of the README's bash block that follows ``marker`` (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(marker) :].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_license_is_shipped_by_every_package() -> None:
    for name, folder in workspace.members(ROOT).items():
        assert (folder / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes(), (
            f"{folder.relative_to(ROOT)}/LICENSE must be a copy of the root LICENSE ({name})"
        )


def test_one_package_flow_as_the_readme_shows(snapshot: Path, tmp_path: Path) -> None:
    """The README's one-package commands, run as written in a copy of the workspace, on a
    machine whose global pytest would fail (it must never be the one that runs)."""
    commands = readme_block("<!-- one-package flow")
    assert commands[0] == "uv sync --package model --group test"
    impostor = tmp_path / "bin"
    impostor.mkdir()
    (impostor / "pytest").write_text("#!/bin/sh\necho 'the global pytest ran' >&2\nexit 99\n")
    (impostor / "pytest").chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV"} and not k.startswith("TOX")
    }
    env["PATH"] = f"{impostor}{os.pathsep}{env['PATH']}"
    for command in commands:
        result = subprocess.run(
            shlex.split(command),
            cwd=snapshot,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr}"
        if command.startswith("uv sync --package"):
            listed = subprocess.run(
                ["uv", "pip", "list", "--python", str(snapshot / ".venv")],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert " model " in f" {listed} ".replace("\n", " ")
            assert "serving" not in listed
            assert "pytest" in listed
        if "pytest" in command:
            assert " passed" in result.stdout


def test_asking_for_an_env_without_its_python_says_so(tmp_path: Path) -> None:
    """`tox -e <env>-py3XX` without that Python: one line and exit code 3 (toxfile.py), not
    tox's "evaluation failed" exit 1 that a test failure also gives."""
    tox = shutil.which("tox")
    assert tox is not None, "tox must be on PATH (it runs this test)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOX")}
    result = subprocess.run(
        [tox, "--workdir", str(tmp_path), "-e", "features-test-py319"],
        cwd=ROOT,
        env={**env, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "features-test-py319: Python 3.19 is not visible to uv: install it, or list it in "
        "PYENV_VERSION (for example PYENV_VERSION=3.11.7:3.12.1:3.13.0); no test ran (exit code 3)"
    )
