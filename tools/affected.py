"""Which packages, and which tox envs, the changes since a git ref affect.

    uv run python tools/affected.py origin/main              # env names, comma-separated
    uv run python tools/affected.py origin/main --packages   # the affected members
    tox --affected origin/main                                # runs those envs (toxfile.py)

Changes are those of the working tree (committed or not, and new files) against the merge
base of REF and HEAD, as a pull request sees them. A changed file selects:

- under a member's folder: that member;
- ``uv.lock``: each member whose locked dependency closure changed (names, versions, sources,
  hashes), so a bump of a library only ``serving`` uses selects ``serving`` alone; a change to
  the shared dev tools the root's dependency groups lock selects every member;
- docs (``docs/``, Markdown outside the packages): ``lint``, plus the tests that read the
  file: those whose source names its path (``"docs/x.md"``, or ``"docs" / "x.md"``, each
  at the start of a string), the root ``tests/`` selecting ``integration``, a member's
  ``tests/`` that member's own envs (not its dependents'); the root README also
  ``release-check``, which ships it;
- root ``tests/``: ``integration``; ``tools/``: ``integration``, ``release-check`` and ``type``;
  ``bench/``: ``type``;
- anything else (root pyproject, tox.toml, toxfile.py, .ci, configs, data, ...): everything.

Every member depending on a changed member is selected too; a changed member brings its own
envs plus ``integration``, ``release-check`` and ``type``; any change brings ``lint``. A ref
starting with ``-`` is refused (git would read it as an option).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Collection, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import workspace

ROOT = workspace.ROOT
EVERYTHING = "*"
PACKAGE_WIDE = ("integration", "release-check", "type")
TESTS_OF = "tests of "  # a selection token: a member's own tests (not its dependents)


class AffectedError(Exception):
    """The selection cannot be computed (an unknown ref, not a git checkout)."""


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AffectedError(result.stderr.strip() or f"git {' '.join(args)} failed")
    return result.stdout


def changed_files(ref: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """The merge base of ``ref`` and HEAD, and the files changed since it (working tree)."""
    if ref.startswith("-"):
        msg = f"{ref!r} is not a git ref (it starts with '-')"
        raise AffectedError(msg)
    base = _git(root, "merge-base", "--end-of-options", ref, "HEAD").strip()
    changed = _git(root, "diff", "--name-only", "--no-renames", base, "--").splitlines()
    new = _git(root, "ls-files", "--others", "--exclude-standard").splitlines()
    return base, sorted(set(changed + new))


def lock_closures(
    lock_text: str, names: Sequence[str], stop: Collection[str] = ()
) -> dict[str, frozenset[str]]:
    """For each of ``names`` (locked packages), every locked entry it reaches through its
    dependencies, extras and dependency groups (each entry as canonical JSON); the packages
    in ``stop`` are neither reached nor walked through (the release tool stops at siblings)."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry in tomllib.loads(lock_text).get("package", []) if lock_text else []:
        entries.setdefault(entry["name"], []).append(entry)

    def edges(entry: dict[str, Any]) -> list[str]:
        groups = [
            entry.get("dependencies", []),
            *entry.get("optional-dependencies", {}).values(),
            *entry.get("dev-dependencies", {}).values(),
        ]
        return [dependency["name"] for group in groups for dependency in group]

    closures = {}
    for name in names:
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo += [n for e in entries.get(current, []) for n in edges(e) if n not in stop]
        closures[name] = frozenset(
            json.dumps(entry, sort_keys=True) for n in seen for entry in entries.get(n, [])
        )
    return closures


def _lock_changes(base: str, root: Path) -> set[str]:
    """Members whose locked closure differs between ``base`` and the working tree; every
    member when the dev tools (what the root locks beyond its members) differ."""
    try:
        before = _git(root, "show", f"{base}:uv.lock")
    except AffectedError:  # no lock at the base
        before = ""
    now = (root / "uv.lock").read_text() if (root / "uv.lock").is_file() else ""
    root_name = tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"]
    members = list(workspace.members(root))
    old, new = (
        lock_closures(before, [*members, root_name]),
        lock_closures(now, [*members, root_name]),
    )

    def tools(closures: dict[str, frozenset[str]]) -> frozenset[str]:
        return closures[root_name].difference(*(closures[m] for m in members))

    if tools(old) != tools(new):
        return {EVERYTHING}
    return {name for name in members if old[name] != new[name]}


def suite_sources(root: Path) -> dict[str, str]:
    """The source of every test suite, by what it selects: ``integration`` for the root
    ``tests/``, ``TESTS_OF + name`` for a member's ``tests/``."""
    suites = {"integration": root / "tests"} | {
        TESTS_OF + name: folder / "tests" for name, folder in workspace.members(root).items()
    }
    return {
        suite: "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.py")))
        for suite, folder in suites.items()
    }


def readers(path: str, sources: dict[str, str]) -> set[str]:
    """The suites of ``sources`` that name ``path`` (relative to the root) at the start of a
    string, whole (``"docs/x.md"``) or joined (``"docs" / "x.md"``)."""
    separator = r"(?:/|[\"']\s*/\s*[\"'])"
    named = separator.join(re.escape(part) for part in PurePosixPath(path).parts)
    pattern = re.compile(rf"(?<=[\"']){named}(?![\w-]|\.\w)")
    return {suite for suite, text in sources.items() if pattern.search(text)}


def _selects(path: str, root: Path, sources: Callable[[], dict[str, str]]) -> set[str]:
    """What one changed file selects: member names, env names, ``TESTS_OF`` a member, or
    EVERYTHING; the tests' ``sources`` are asked for (read) only for a docs file."""
    parts = PurePosixPath(path)
    for name, folder in workspace.members(root).items():
        if parts.is_relative_to(folder.relative_to(root).as_posix()):
            return {name}
    top = parts.parts[0]
    if path == "uv.lock":
        return {"uv.lock"}
    if path == "README.md":
        return {"release-check"} | readers(path, sources())
    if top == "docs" or parts.suffix == ".md":
        return readers(path, sources())
    return {
        "tests": {"integration"},
        "tools": {"integration", "release-check", "type"},
        "bench": {"type"},
    }.get(top, {EVERYTHING})


def select(ref: str, root: Path = ROOT) -> tuple[set[str], set[str]]:
    """The members whose envs run (those changed and their dependents, and those whose tests
    read a changed doc) and the other envs the changes since ``ref`` select; both hold
    :data:`EVERYTHING` when a shared file changed."""
    base, files = changed_files(ref, root)
    sources = functools.cache(lambda: suite_sources(root))  # read once, if a doc changed
    picked: set[str] = set()
    for path in files:
        picked |= _selects(path, root, sources)
    if "uv.lock" in picked:
        picked = (picked - {"uv.lock"}) | _lock_changes(base, root)
    names = set(workspace.members(root))
    if EVERYTHING in picked:
        return names, {EVERYTHING}
    tested = {token for token in picked if token.startswith(TESTS_OF)}
    changed = workspace.dependents(picked & names, root) if picked & names else set()
    packages = changed | {token.removeprefix(TESTS_OF) for token in tested}
    extra = (picked - names - tested) | (set(PACKAGE_WIDE) if changed else set())
    return packages, extra | ({"lint"} if files else set())


def envs(ref: str, listed: Sequence[str] | None = None, root: Path = ROOT) -> list[str]:
    """The envs to run for the changes since ``ref``, in tox's order; ``listed`` is
    tox.toml's own ``env_list`` (read from it when not given)."""
    if listed is None:
        listed = tomllib.loads((root / "tox.toml").read_text()).get("env_list", [])
    packages, extra = select(ref, root)
    if EVERYTHING in extra:
        return [*workspace.package_envs(root), *listed]
    return [*workspace.package_envs(root, packages), *(e for e in listed if e in extra)]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the affected envs (or members) for the changes since a git ref."""
    parser = argparse.ArgumentParser(prog="affected", description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="a git ref, for example origin/main")
    parser.add_argument("--packages", action="store_true", help="print the members instead")
    args = parser.parse_args(argv)
    try:
        if args.packages:
            print("\n".join(sorted(select(args.ref)[0])))
        else:
            print(",".join(envs(args.ref)))
    except AffectedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
