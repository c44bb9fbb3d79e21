"""Affected-only runs (tools/affected.py, `tox --affected REF`), on small git histories made in
a copy of the workspace: each kind of change selects what it should, and nothing more."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import GIT, ROOT

sys.path.insert(0, str(ROOT / "tools"))
import affected
import workspace

PACKAGE_WIDE = ["integration", "release-check", "lint", "type"]
# Docs named by file name alone: a test naming a doc's path (`"docs/x.md"`, `"docs" / "x.md"`)
# is taken as reading it (tools/affected.py), and these tests only change them in a copy.
GUIDE = "new-guide.md"


def commit(repo: Path, message: str) -> None:
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=repo, check=True)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def bump_in_lock(repo: Path, name: str) -> None:
    """Change the locked version (and its files' hashes) of ``name`` in uv.lock, as
    ``uv lock --upgrade-package`` would."""
    lock = repo / "uv.lock"
    text = lock.read_text()
    entry = re.search(rf'\[\[package\]\]\nname = "{re.escape(name)}"\nversion = "([^"]+)"', text)
    assert entry is not None, name
    start, end = entry.span()
    new = entry.group(0).replace(f'version = "{entry.group(1)}"', 'version = "999.0"')
    rest = text[end:].split("[[package]]", 1)[0]
    files = rest.replace("sha256:", "sha256:0")
    lock.write_text(text[:start] + new + files + text[end + len(rest) :])


@pytest.fixture
def repo(snapshot: Path) -> Path:
    """The snapshot with a `base` branch at its first commit."""
    subprocess.run([*GIT, "branch", "base"], cwd=snapshot, check=True)
    return snapshot


def envs_of(packages: list[str], repo: Path) -> list[str]:
    return workspace.package_envs(repo, packages)


@pytest.mark.parametrize(
    ("path", "packages"),
    [
        ("packages/features/src/features/spec.py", ["features", "model", "serving"]),
        ("packages/model/src/model/cli.py", ["model", "serving"]),
        ("packages/serving/README.md", ["serving"]),
    ],
)
def test_a_package_change_selects_it_and_its_dependents(
    path: str, packages: list[str], repo: Path
) -> None:
    append(repo / path, "\n# changed\n")
    commit(repo, f"change {path}")
    assert affected.select("base", repo)[0] == set(packages)
    assert affected.envs("base", root=repo) == [*envs_of(packages, repo), *PACKAGE_WIDE]


@pytest.mark.parametrize(
    ("library", "packages"),
    [
        ("uvicorn", ["serving"]),  # only serving uses it
        ("skops", ["model", "serving"]),  # model's, so serving's too
        ("numpy", ["features", "model", "serving"]),
    ],
)
def test_a_lock_change_selects_the_packages_whose_closure_changed(
    library: str, packages: list[str], repo: Path
) -> None:
    bump_in_lock(repo, library)
    commit(repo, f"bump {library}")
    assert affected.select("base", repo)[0] == set(packages)
    assert affected.envs("base", root=repo) == [*envs_of(packages, repo), *PACKAGE_WIDE]


def test_a_dev_tool_bump_in_the_lock_selects_everything(repo: Path) -> None:
    bump_in_lock(repo, "ruff")
    commit(repo, "bump ruff")
    assert affected.envs("base", root=repo) == [*workspace.package_envs(repo), *PACKAGE_WIDE]


@pytest.mark.parametrize("path", ["pyproject.toml", "tox.toml", "toxfile.py", "configs/x.toml"])
def test_shared_root_configuration_selects_everything(path: str, repo: Path) -> None:
    target = repo / path
    target.write_text((target.read_text() if target.is_file() else "") + "\n# changed\n")
    commit(repo, f"change {path}")
    assert affected.envs("base", root=repo) == [*workspace.package_envs(repo), *PACKAGE_WIDE]


def test_a_docs_only_change_selects_only_lint(repo: Path) -> None:
    unread = "benchmarks.md"  # no test reads it
    append(repo / "docs" / unread, "\nMore words.\n")
    (repo / "docs" / GUIDE).write_text("# A new guide\n")
    commit(repo, "docs")
    assert affected.select("base", repo)[0] == set()
    assert affected.envs("base", root=repo) == ["lint"]


@pytest.mark.parametrize(
    ("name", "packages", "envs"),
    [
        ("spec-reference.md", ["features"], ["lint"]),  # features' schema test
        ("config-reference.md", ["model"], ["lint"]),  # model's schema test
        ("your-own-data.md", [], ["integration", "lint"]),  # run as written
        ("publishing.md", [], ["integration", "lint"]),  # the consumer's steps
    ],
)
def test_a_docs_file_that_tests_read_selects_those_tests(
    name: str, packages: list[str], envs: list[str], repo: Path
) -> None:
    """The tests' own envs, not the dependents of the member whose tests read it."""
    append(repo / "docs" / name, "\nMore words.\n")
    commit(repo, f"change {name}")
    assert affected.select("base", repo)[0] == set(packages)
    assert affected.envs("base", root=repo) == [*envs_of(packages, repo), *envs]


def test_a_new_test_reading_a_doc_is_found_without_an_edit_of_the_tool(repo: Path) -> None:
    """Which tests read a doc is read from their sources: a test added later counts too."""
    (repo / "docs" / GUIDE).write_text("# A new guide\n")
    test = repo / "packages" / "serving" / "tests" / "test_new_guide.py"
    test.write_text(f'GUIDE = ROOT / "docs" / "{GUIDE}"\n')
    commit(repo, "a guide and the test that reads it")
    subprocess.run([*GIT, "branch", "-f", "base"], cwd=repo, check=True)
    append(repo / "docs" / GUIDE, "\nMore words.\n")
    commit(repo, "the guide changes")
    assert affected.envs("base", root=repo) == [*envs_of(["serving"], repo), "lint"]
    # named as one path: the same; only mentioned in a comment: not read
    test.write_text(f'# see docs/{GUIDE}\nGUIDE = "docs/{GUIDE}"\n')
    commit(repo, "the test names the path whole")
    subprocess.run([*GIT, "branch", "-f", "base"], cwd=repo, check=True)
    append(repo / "docs" / GUIDE, "\nMore words.\n")
    assert affected.envs("base", root=repo) == [*envs_of(["serving"], repo), "lint"]
    test.write_text(f"# see docs/{GUIDE}\n")
    commit(repo, "the test no longer reads it")
    subprocess.run([*GIT, "branch", "-f", "base"], cwd=repo, check=True)
    append(repo / "docs" / GUIDE, "\nMore words.\n")
    assert affected.envs("base", root=repo) == ["lint"]


def test_root_tests_and_tools_select_their_envs(repo: Path) -> None:
    append(repo / "tests" / "test_affected.py", "\n# changed\n")
    commit(repo, "a test")
    assert affected.envs("base", root=repo) == ["integration", "lint"]
    append(repo / "tools" / "release.py", "\n# changed\n")  # not committed: counted too
    assert affected.envs("base", root=repo) == ["integration", "release-check", "lint", "type"]


def test_nothing_changed_selects_nothing_and_a_bad_ref_says_so(repo: Path) -> None:
    assert affected.envs("base", root=repo) == []
    with pytest.raises(affected.AffectedError, match="nope"):
        affected.envs("nope", root=repo)


@pytest.mark.parametrize("ref", ["-h", "--all", "--output=refs.txt", "-"])
def test_a_ref_starting_with_a_dash_is_refused_in_one_line(ref: str, repo: Path) -> None:
    """Never handed to git, where it would be an option."""
    with pytest.raises(affected.AffectedError, match=r"is not a git ref \(it starts with '-'\)"):
        affected.envs(ref, root=repo)
    printed = subprocess.run(
        [sys.executable, "tools/affected.py", "--", ref],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert printed.returncode == 1
    assert printed.stderr == f"error: {ref!r} is not a git ref (it starts with '-')\n"
    assert not (repo / "refs.txt").exists()


def test_changes_count_from_the_merge_base_as_a_pull_request_sees_them(repo: Path) -> None:
    """Work on the base branch after the fork does not count against the branch."""
    subprocess.run([*GIT, "checkout", "-q", "-b", "feature"], cwd=repo, check=True)
    append(repo / "packages/serving/README.md", "\nbranch work\n")
    commit(repo, "on the branch")
    subprocess.run([*GIT, "checkout", "-q", "base"], cwd=repo, check=True)
    append(repo / "packages/features/README.md", "\nbase work\n")
    commit(repo, "on base")
    subprocess.run([*GIT, "checkout", "-q", "feature"], cwd=repo, check=True)
    assert affected.select("base", repo)[0] == {"serving"}


def test_tox_affected_runs_only_the_selected_envs(repo: Path) -> None:
    tox = shutil.which("tox")
    assert tox is not None, "tox must be on PATH (it runs this test)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOX")}
    append(repo / "packages/serving/README.md", "\nchanged\n")
    commit(repo, "serving docs")
    listed = subprocess.run(
        [tox, "--affected", "base", "-l"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    expected = [*envs_of(["serving"], repo), *PACKAGE_WIDE]
    assert listed.stdout.split() == expected
    assert f"--affected base: {', '.join(expected)}" in listed.stderr
    printed = subprocess.run(
        [sys.executable, "tools/affected.py", "base", "--packages"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout == "serving\n"


def test_the_tests_sources_are_read_only_when_a_doc_changed(repo: Path) -> None:
    """Every test file was read on each call, docs changed or not. A test file that cannot be
    read (a dangling link) shows which calls read them."""
    (repo / "tests" / "unreadable.py").symlink_to(repo / "tests" / "gone.py")
    append(repo / "packages/model/src/model/cli.py", "\n# changed\n")
    commit(repo, "a source change and a dangling test file")
    assert affected.select("base", repo)[0] == {"model", "serving"}
    (repo / "docs" / GUIDE).write_text("# A new guide\n")
    with pytest.raises(FileNotFoundError, match=r"unreadable\.py"):
        affected.select("base", repo)  # a doc changed: the tests are read now
