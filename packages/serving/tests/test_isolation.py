"""serving is the top of the stack: it gets model and features through its declared ranges."""

import subprocess
import sys
from pathlib import Path

from features.testing import locked_packages

PACKAGE = Path(__file__).resolve().parents[1]


def test_imports_only_what_it_declares() -> None:
    """deptry, against pyproject.toml: no undeclared, only-transitive or unused dependency."""
    deptry = [sys.executable, "-m", "deptry", "--no-ansi", "src"]
    check = subprocess.run(deptry, cwd=PACKAGE, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_package_env_has_the_whole_chain(workspace: Path) -> None:
    assert {"serving", "model", "features"} <= locked_packages("serving", workspace)
