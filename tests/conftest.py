import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.testing import bundle_set_aside

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=Release Test", "-c", "user.email=release@test.invalid"]
JUNK = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".tox",
    "dist",
    "artifacts",
    "__pycache__",
    "default_artifact",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
)


@pytest.fixture
def fresh_bundle() -> Iterator[Path]:
    """Run with no bundled default artifact; put back whatever was there afterwards."""
    with bundle_set_aside() as bundle:
        yield bundle


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A throwaway git repository holding the current workspace (so tags and bumps land there)."""
    target = tmp_path / "repo"
    shutil.copytree(ROOT, target, ignore=JUNK)
    subprocess.run([*GIT, "init", "-q"], cwd=target, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=target, check=True)
    subprocess.run([*GIT, "commit", "-qm", "snapshot"], cwd=target, check=True)
    return target
