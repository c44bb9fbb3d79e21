"""The members and their order come from the pyproject files (tools/workspace.py): a package
added with the scaffold command gets its tox envs, isolation check, import contracts and place
in the release order with no file edited by hand."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from features.testing import locked_packages

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import import_contracts
import workspace


def isolation_problems(name: str, root: Path) -> list[str]:
    """What the lock gives ``name`` beyond the members it depends on, or lacks of them."""
    members = set(workspace.members(root))
    installed = locked_packages(name, root) & members
    expected = workspace.closure(name, root)
    return [f"{name}'s locked env holds {m}" for m in sorted(installed - expected)] + [
        f"{name}'s locked env lacks {m}" for m in sorted(expected - installed)
    ]


@pytest.mark.parametrize("name", list(workspace.order(ROOT)))
def test_each_member_locks_only_the_members_it_depends_on(name: str) -> None:
    assert isolation_problems(name, ROOT) == []


def test_members_and_order_are_the_workspace_s() -> None:
    assert sorted(workspace.members(ROOT)) == sorted(
        p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()
    )
    assert workspace.order(ROOT) == ("features", "model", "serving")
    assert workspace.closure("serving", ROOT) == {"serving", "model", "features"}
    assert workspace.dependents({"model"}, ROOT) == {"model", "serving"}
    assert workspace.scripts(ROOT) == {
        "features": ["features"],
        "model": ["model"],
        "serving": ["serving"],
    }


def test_an_extra_listed_for_tests_gets_its_own_env() -> None:
    """model lists its fast extra in ``[tool.workspace] test-extras``: tox runs its tests again
    in model-fast, right after model-lowest, synced with ``--extra fast``; CI's plain `tox`
    runs it with the others."""
    envs = workspace.package_envs(ROOT)
    assert envs.index("model-fast") == envs.index("model-lowest") + 1
    assert workspace.extras_tested("model", ROOT) == ["fast"]
    assert workspace.member_of_env("model-fast", ROOT) == "model"
    assert workspace.extra_of_env("model-fast", ROOT) == "fast"
    assert workspace.extra_of_env("model-test", ROOT) is None
    assert workspace.extra_of_env("serving-fast", ROOT) is None  # serving lists none
    tox = shutil.which("tox")
    assert tox is not None, "tox must be on PATH (it runs this test)"
    shown = run([tox, "config", "-e", "model-fast", "-k", "extras", "package_root"], ROOT)
    assert shown.returncode == 0, shown.stderr
    assert "extras = fast" in shown.stdout
    assert f"package_root = {ROOT / 'packages' / 'model'}" in shown.stdout
    assert "model-fast" in run([tox, "-l"], ROOT).stdout.split()


def tox_env() -> dict[str, str]:
    """This environment minus what ties tox or uv to the env running the tests."""
    drop = {"UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("TOX")}
    return {**env, "UV_PYTHON_DOWNLOADS": "never"}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=tox_env(), capture_output=True, text=True, timeout=900, check=False
    )


def test_the_scaffold_adds_a_fourth_package_that_everything_derives(snapshot: Path) -> None:
    """`tools/new_package.py reports --depends-on model` in a copy: tox lists and passes its
    envs, the isolation check and the import contracts cover it, the release order puts it
    after model; the only files changed are its own folder, the root pyproject and the lock."""
    tox = shutil.which("tox")
    assert tox is not None, "tox must be on PATH (it runs this test)"
    made = run(
        ["uv", "run", "python", "tools/new_package.py", "reports", "--depends-on", "model"],
        snapshot,
    )
    assert made.returncode == 0, made.stderr
    assert "release order features -> model -> reports -> serving" in made.stdout
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], snapshot).stdout
    changed = {line[3:] for line in status.splitlines()}
    assert {"pyproject.toml", "uv.lock"} < changed
    assert all(
        path.startswith("packages/reports/") for path in changed - {"pyproject.toml", "uv.lock"}
    ), changed

    listed = run([tox, "-l"], snapshot)
    assert listed.returncode == 0, listed.stderr
    envs = listed.stdout.split()
    for env in ("reports-test", "reports-lowest", "reports-test-py311", "reports-test-py313"):
        assert env in envs
    assert envs.index("reports-test") > envs.index("model-test")
    tested = run([tox, "-e", "reports-test"], snapshot)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "1 passed" in tested.stdout  # its isolation test: deptry on its sources

    workspace.members.cache_clear()
    workspace.order.cache_clear()
    order = workspace.order(snapshot)
    assert order.index("reports") > order.index("model") > order.index("features")
    assert workspace.closure("reports", snapshot) == {"reports", "model", "features"}
    for name in order:
        assert isolation_problems(name, snapshot) == [], name
    contracts = import_contracts.contracts(snapshot)
    assert "[importlinter:contract:reports-public-api]" in contracts
    assert "name = reports imports no member it does not depend on (serving)" in contracts
    assert "name = model imports no member it does not depend on (reports, serving)" in contracts


def test_a_new_member_with_a_bad_name_or_sibling_is_refused(snapshot: Path) -> None:
    for args, message in (
        (["Reports"], "use lowercase letters and digits"),
        (["my_reports"], "use lowercase letters and digits"),
        (["model"], "model is already a member (packages/model)"),
        (["reports", "--depends-on", "modle"], "--depends-on modle: not a member"),
    ):
        made = run(["uv", "run", "python", "tools/new_package.py", *args], snapshot)
        assert made.returncode == 1
        assert message in made.stderr
    assert run(["git", "status", "--porcelain"], snapshot).stdout == ""
    # a description with quotes and backslashes is written as it is, the pyproject stays TOML
    made = run(
        [
            "uv", "run", "python", "tools/new_package.py", "notes",
            "--description", 'Say "hi" \\ and \'bye\'',
        ],
        snapshot,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    member = tomllib.loads((snapshot / "packages/notes/pyproject.toml").read_text())
    assert member["project"]["description"] == "Say \"hi\" \\ and 'bye'"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("class", "'class' is a Python keyword"),
        ("json", "'json' is a module of Python's standard library"),
        ("numpy", "'numpy' is taken in the workspace's environment by distribution numpy"),
        ("sklearn", "'sklearn' is taken in the workspace's environment by module sklearn"),
        ("r" * 227, f"{'r' * 20}... (227 characters) is too long"),
    ],
)
def test_a_name_python_or_the_file_system_cannot_take_is_refused(
    name: str, message: str, snapshot: Path
) -> None:
    """One line, exit 1, nothing written: not the package's folder, not the root's files. The
    longest name allowed leaves room for its wheel's file name (226 of 255 bytes)."""
    made = subprocess.run(
        [sys.executable, "tools/new_package.py", name],
        cwd=snapshot,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 1, made.stdout + made.stderr
    assert made.stderr.startswith(f"error: {message}"), made.stderr
    assert len(made.stderr.splitlines()) == 1, made.stderr
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], snapshot).stdout == ""
