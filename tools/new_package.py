"""Add a package to the workspace: the files a member needs, then ``uv add`` at the root.

    uv run python tools/new_package.py reports --depends-on model

Writes ``packages/NAME/`` (pyproject with a compatible range on each sibling it depends on,
README, LICENSE copy, changelog and its fragments folder, ``src/NAME/`` typed, an isolation
test), then makes the root depend on it (``uv add``, which also re-locks). Nothing else needs
an edit: tox envs, lint and type paths, import contracts, the isolation check, the release
order and the affected-only runs all read the members from the workspace. A name Python or
the file system cannot take (a keyword, a standard-library module, a module or distribution
the environment has, too long for a file name) is refused before anything is written.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import keyword
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import release
import workspace

NAME = re.compile(r"^[a-z][a-z0-9]*$")  # one name to install and import (no - or _ to normalise)
LONGEST_SUFFIX = "-999.999.999-py3-none-any.whl"
"""The most a file name made from a member's name adds to it (its wheel's, with room for a
version that grows): the folders ``packages/NAME``, ``src/NAME``, the sdist, the SBOM, the
release tag and the tox envs add less."""

PYPROJECT = """\
[project]
name = "{name}"
version = "0.1.0"
description = {description}
readme = "README.md"
requires-python = "{requires_python}"
license = "MIT"
license-files = ["LICENSE"]  # a copy of the root LICENSE, shipped in the wheel
dependencies = [{dependencies}]
{sources}
[build-system]
requires = ["uv_build>=0.9,<0.14"]
build-backend = "uv_build"

[tool.uv]
# Rebuild the non-editable install whenever a source file changes, not only pyproject.toml.
cache-keys = [{{ file = "pyproject.toml" }}, {{ file = "src/**/*" }}]

{deptry}[tool.towncrier]
# `changes/<id>.<type>.md` fragments, assembled into CHANGELOG.md by `tools/release.py bump`
name = "{name}"
directory = "changes"
filename = "CHANGELOG.md"
title_format = "## {{name}} {{version}} ({{project_date}})"
issue_format = "#{{issue}}"
"""

DEPTRY = """\
[tool.deptry.per_rule_ignores]
# Declared before the code uses them; delete this once src/ imports them (deptry then checks).
DEP002 = [{names}]

"""

INIT = '''\
"""The {name} package of the workspace (its README says what it is for)."""

from importlib.metadata import version

__version__ = version("{name}")
__all__ = ["__version__"]
'''

ISOLATION_TEST = '''\
"""{name} imports only what its pyproject declares (the root's tests/test_workspace_graph.py
checks that its locked env holds no member it does not depend on)."""

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def test_imports_only_what_it_declares() -> None:
    """deptry, against pyproject.toml: no undeclared, only-transitive or unused dependency."""
    deptry = [sys.executable, "-m", "deptry", "--no-ansi", "src"]
    check = subprocess.run(deptry, cwd=PACKAGE, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
'''


class ScaffoldError(Exception):
    """The package cannot be added; the message says why."""


def scaffold(
    name: str, depends_on: Sequence[str], description: str, root: Path = workspace.ROOT
) -> Path:
    """Write ``packages/NAME`` and add it to the root; return its folder."""
    members = workspace.members(root)
    if not NAME.match(name):
        msg = f"{name!r}: use lowercase letters and digits (one name to install and import)"
        raise ScaffoldError(msg)
    if name in members:
        msg = f"{name} is already a member ({members[name].relative_to(root)})"
        raise ScaffoldError(msg)
    _check_name(name, root)
    unknown = sorted(set(depends_on) - set(members))
    if unknown:
        msg = f"--depends-on {', '.join(unknown)}: not a member ({', '.join(members)})"
        raise ScaffoldError(msg)
    folder = root / "packages" / name
    if folder.exists():
        msg = f"{folder} exists already"
        raise ScaffoldError(msg)
    root_project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = [
        f"{sibling}{release.compatible_range(release.version_of(sibling, root))}"
        for sibling in sorted(depends_on)
    ]
    sources = "".join(f"{s} = {{ workspace = true }}\n" for s in sorted(depends_on))
    try:
        _write(folder, name, description, root_project, requirements, sources, depends_on, root)
        workspace.members.cache_clear()
        workspace.order.cache_clear()
        _add_to_root(name, root)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-made is left behind
        workspace.members.cache_clear()
        workspace.order.cache_clear()
        raise
    return folder


def _check_name(name: str, root: Path) -> None:
    """Refuse a name Python cannot import as the package (a keyword, a standard library
    module, a module or distribution this environment has already) or the file system cannot
    hold in one file name."""
    if keyword.iskeyword(name):
        msg = f"{name!r} is a Python keyword: `import {name}` would be a syntax error"
        raise ScaffoldError(msg)
    if name in sys.stdlib_module_names:
        msg = f"{name!r} is a module of Python's standard library: the package would shadow it"
        raise ScaffoldError(msg)
    try:
        taken = f"distribution {name} {importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(name)
        taken = f"module {name} ({spec.origin or 'a namespace'})" if spec else ""
    if taken:
        msg = f"{name!r} is taken in the workspace's environment by {taken}: pick another name"
        raise ScaffoldError(msg)
    try:
        limit = os.pathconf(root, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = len(f"{name}{LONGEST_SUFFIX}".encode())
    if longest > limit:
        most = limit - len(LONGEST_SUFFIX.encode())
        msg = (
            f"{name[:20]}... ({len(name)} characters) is too long: the file names made from it "
            f"(its wheel's, {longest} bytes) exceed the file system's {limit}; use at most {most}"
        )
        raise ScaffoldError(msg)


def _add_to_root(name: str, root: Path) -> None:
    """``uv add`` the new member to the root project (its dependency and source; re-locks)."""
    added = subprocess.run(
        ["uv", "add", "--no-sync", name], cwd=root, capture_output=True, text=True, check=False
    )
    if added.returncode != 0:
        msg = f"`uv add {name}` at the root failed:\n{added.stderr.strip()}"
        raise ScaffoldError(msg)


def _write(  # noqa: PLR0917 - the parts scaffold() worked out
    folder: Path,
    name: str,
    description: str,
    root_project: dict[str, Any],
    requirements: list[str],
    sources: str,
    depends_on: Sequence[str],
    root: Path,
) -> None:
    """The package's files."""
    (folder / "src" / name).mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "changes").mkdir()
    (folder / "pyproject.toml").write_text(
        PYPROJECT.format(
            name=name,
            description=json.dumps(description),  # a TOML basic string, escapes included
            requires_python=root_project["requires-python"],
            dependencies=", ".join(f'"{r}"' for r in requirements),
            sources=f"\n[tool.uv.sources]\n{sources}" if sources else "",
            deptry=DEPTRY.format(names=", ".join(f'"{s}"' for s in sorted(depends_on)))
            if depends_on
            else "",
        )
    )
    (folder / "README.md").write_text(f"# {name}\n\n{description}\n")
    (folder / "CHANGELOG.md").write_text(
        f"# Changelog of {name}\n\n<!-- towncrier release notes start -->\n"
    )
    (folder / "changes" / "+scaffold.feature.md").write_text(f"First version of {name}.\n")
    shutil.copy2(root / "LICENSE", folder / "LICENSE")
    (folder / "src" / name / "__init__.py").write_text(INIT.format(name=name))
    (folder / "src" / name / "py.typed").write_text("")
    (folder / "tests" / "test_isolation.py").write_text(ISOLATION_TEST.format(name=name))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="new_package", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="distribution and import name, e.g. reports")
    parser.add_argument(
        "--depends-on", action="append", default=[], metavar="MEMBER", help="a sibling it uses"
    )
    parser.add_argument("--description", default="A package of the penguins-ml workspace.")
    args = parser.parse_args(argv)
    try:
        folder = scaffold(args.name, args.depends_on, args.description)
    except ScaffoldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    order = " -> ".join(workspace.order())
    print(f"{args.name}: created {folder.relative_to(workspace.ROOT)}; release order {order}")
    print(f"next: uv sync; tox -e {args.name}-test   (tox -l lists its envs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
