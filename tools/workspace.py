"""The workspace's members and their dependency graph, read from the pyproject files: the one
list every tool derives its package names and order from (never written out by hand)."""

from __future__ import annotations

import graphlib
import tomllib
from collections.abc import Collection
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


@cache
def members(root: Path = ROOT) -> dict[str, Path]:
    """Each member's distribution name and folder, from ``[tool.uv.workspace] members`` (and
    ``exclude``) of the root pyproject, sorted by name."""
    workspace = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    excluded = {path for pattern in workspace.get("exclude", []) for path in root.glob(pattern)}
    found = {}
    for pattern in workspace["members"]:
        for folder in root.glob(pattern):
            if folder in excluded or not (folder / "pyproject.toml").is_file():
                continue
            name = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
            found[name] = folder
    return dict(sorted(found.items()))


def pyproject(name: str, root: Path = ROOT) -> dict:  # type: ignore[type-arg]
    """A member's parsed pyproject.toml."""
    return tomllib.loads((members(root)[name] / "pyproject.toml").read_text())


def sibling_names(name: str, root: Path = ROOT) -> list[str]:
    """The members ``name`` depends on directly (its ``[project] dependencies``)."""
    requirements = [Requirement(r) for r in pyproject(name, root)["project"]["dependencies"]]
    return sorted({r.name for r in requirements} & set(members(root)))


@cache
def order(root: Path = ROOT) -> tuple[str, ...]:
    """Every member after the members it depends on (ties by name): the release order."""
    sorter = graphlib.TopologicalSorter({n: sibling_names(n, root) for n in members(root)})
    sorter.prepare()
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered += ready
        sorter.done(*ready)
    return tuple(ordered)


def closure(name: str, root: Path = ROOT) -> set[str]:
    """``name`` and every member it depends on, directly or not."""
    found = {name}
    for sibling in sibling_names(name, root):
        found |= closure(sibling, root)
    return found


def dependents(names: set[str], root: Path = ROOT) -> set[str]:
    """``names`` and every member that depends on one of them, directly or not."""
    return {m for m in members(root) if closure(m, root) & names}


PYTHON_MATRIX = ("py311", "py312", "py313")  # every package's tests run on each of these


def extras_tested(name: str, root: Path = ROOT) -> list[str]:
    """The extras a member's tests run with too, each in its own env ``<name>-<extra>``:
    ``test-extras`` of ``[tool.workspace]`` in its pyproject, each one of its extras."""
    project = pyproject(name, root)
    extras = list(project.get("tool", {}).get("workspace", {}).get("test-extras", []))
    declared = project["project"].get("optional-dependencies", {})
    wrong = [e for e in extras if e not in declared or e in {"test", "lowest"}]
    if wrong:
        msg = f"{name}: [tool.workspace] test-extras {wrong} are not extras of it"
        raise ValueError(msg)
    return extras


def package_envs(root: Path = ROOT, only: Collection[str] | None = None) -> list[str]:
    """The per-package tox envs (toxfile.py generates them), members in dependency order:
    ``<pkg>-test``, ``<pkg>-lowest``, ``<pkg>-<extra>`` for each of its :func:`extras_tested`,
    then ``<pkg>-test-py3XX``; of ``only`` those members when given."""
    names = [name for name in order(root) if only is None or name in only]
    kinds = {name: ["test", "lowest", *extras_tested(name, root)] for name in names}
    envs = [f"{name}-{kind}" for name in names for kind in kinds[name]]
    return envs + [f"{name}-test-{python}" for name in names for python in PYTHON_MATRIX]


def member_of_env(env: str, root: Path = ROOT) -> str | None:
    """The member a per-package env tests, or None for any other env."""
    return next((m for m in order(root) if env in package_envs(root, [m])), None)


def extra_of_env(env: str, root: Path = ROOT) -> str | None:
    """The extra a ``<pkg>-<extra>`` env installs, or None for any other env."""
    member = member_of_env(env, root)
    extra = env.removeprefix(f"{member}-") if member else None
    return extra if member and extra in extras_tested(member, root) else None


def scripts(root: Path = ROOT) -> dict[str, list[str]]:
    """Each member's console scripts (``[project.scripts]``), by member."""
    return {
        name: sorted(pyproject(name, root)["project"].get("scripts", {})) for name in order(root)
    }
