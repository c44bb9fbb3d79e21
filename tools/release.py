"""Release tooling for the workspace: bump a package, check a release, publish to the index.

    uv run python tools/release.py bump model minor     # + sibling ranges + uv.lock
    uv run python tools/release.py check                # what `tox -e release-check` runs
    uv run python tools/release.py publish              # what `tox -e publish` runs

Packages are released on their own, in dependency order, read from the members' pyprojects
(``tools/workspace.py``); each release is tagged ``<name>-v<version>`` once published. A member
whose tag exists and whose inputs (its folder, and the locked versions of its third-party
dependencies) did not change since is already released: publish skips it. One that changed
must have a new version. Only committed work is published, built from the commit it is tagged on.
The index comes from uv's own variables, never from committed files: ``UV_PUBLISH_URL`` (upload),
``UV_PUBLISH_USERNAME``/``UV_PUBLISH_PASSWORD`` (or ``UV_PUBLISH_TOKEN``) for uploads, and
``UV_INDEX_PRIVATE_URL`` (or the ``private`` entry of ``UV_INDEX``) with
``UV_INDEX_PRIVATE_USERNAME``/``UV_INDEX_PRIVATE_PASSWORD`` (the simple index, read to see what
is already there). Credentials are sent only to the host they belong to, over https unless that
host is this machine, and no secret is ever printed (URLs are shown with ``***`` for theirs).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

import affected
import workspace

ROOT = Path(__file__).resolve().parents[1]
ORDER = workspace.order(ROOT)  # dependency order, from the members' pyprojects


class ReleaseError(Exception):
    """A release step that cannot go on; the message says why and what to do."""


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command, return its stdout; on failure raise with its stderr (never the env)."""
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )
    if result.returncode != 0:
        msg = f"`{' '.join(map(str, command[:3]))} ...` failed:\n{result.stderr.strip()}"
        raise ReleaseError(msg)
    return result.stdout


def version_of(name: str, root: Path = ROOT) -> Version:
    """A member's version, from its pyproject."""
    return Version(workspace.pyproject(name, root)["project"]["version"])


def compatible_range(version: Version) -> str:
    """``>=0.2,<0.3`` for 0.x (a minor is a breaking release), ``>=1.2,<2`` from 1.0 on."""
    major, minor = version.release[0], version.release[1] if len(version.release) > 1 else 0
    if major == 0:
        return f">=0.{minor},<0.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


# --- change fragments -----------------------------------------------------------------------

FRAGMENT_TYPES = ("feature", "bugfix", "doc", "removal", "misc")
FRAGMENT_NAME = re.compile(
    rf"(?:[0-9]+|\+[A-Za-z0-9][A-Za-z0-9._-]*)\.(?:{'|'.join(FRAGMENT_TYPES)})\.md"
)
MAX_FRAGMENT_BYTES = 64 * 1024


def change_fragments(name: str, root: Path = ROOT) -> list[Path]:
    """Everything in the member's ``changes/`` but its README and hidden files: each one must
    be a change fragment (:func:`fragment_text`)."""
    folder = workspace.members(root)[name] / "changes"
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name != "README.md" and not p.name.startswith(".")
    )


def fragment_text(path: Path) -> str:
    """The text of the change fragment at ``path``; raises saying why ``path`` is not one (a
    link, a folder, a wrong name, too large, not UTF-8). A link is never followed."""
    mode = path.lstat().st_mode
    if not stat.S_ISREG(mode):
        kind = "symlink" if stat.S_ISLNK(mode) else "folder" if stat.S_ISDIR(mode) else "special"
        msg = f"a {kind}, not a change fragment: fragments are regular files inside changes/"
        raise ReleaseError(msg)
    if not FRAGMENT_NAME.fullmatch(path.name):
        msg = (
            "not a change fragment's name: <issue>.<type>.md or +<short-name>.<type>.md, "
            f"<type> one of {', '.join(FRAGMENT_TYPES)}"
        )
        raise ReleaseError(msg)
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as file:  # the file checked above, even if swapped since
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            msg = "not a regular file"
            raise ReleaseError(msg)
        data = file.read(MAX_FRAGMENT_BYTES + 1)
    if len(data) > MAX_FRAGMENT_BYTES:
        msg = f"larger than {MAX_FRAGMENT_BYTES // 1024} KiB"
        raise ReleaseError(msg)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        msg = "not UTF-8 text"
        raise ReleaseError(msg) from None


def read_fragments(name: str, root: Path = ROOT) -> tuple[dict[Path, str], list[str]]:
    """The member's change fragments with their texts, and a line for each entry of its
    ``changes/`` that is not one."""
    folder = workspace.members(root)[name] / "changes"
    if folder.is_symlink() or not folder.is_dir():
        return {}, [f"{folder.relative_to(root)}: not a folder (change fragments go there)"]
    texts, problems = {}, []
    for path in change_fragments(name, root):
        try:
            texts[path] = fragment_text(path)
        except (ReleaseError, OSError) as error:
            problems.append(f"{path.relative_to(root)}: {error}")
    return texts, problems


def check_fragments(root: Path = ROOT) -> list[str]:
    """Every member's ``changes/`` holds change fragments only, each one well formed."""
    return [problem for name in workspace.order(root) for problem in read_fragments(name, root)[1]]


# --- bump -----------------------------------------------------------------------------------


def bump(name: str, part: str, root: Path = ROOT) -> list[str]:
    """Bump ``name`` with ``uv version``, assemble its CHANGELOG.md from its change fragments,
    widen the dependents' ranges that exclude the new version, re-lock. Everything is checked
    and computed before the first file is written, and a failure after it puts every file
    back. Returns what changed, as lines."""
    if name not in workspace.members(root):
        msg = f"unknown package {name!r}; choose one of {', '.join(workspace.order(root))}"
        raise ReleaseError(msg)
    package_dir = workspace.members(root)[name]
    fragments, problems = read_fragments(name, root)
    if problems:
        raise refused(problems, "nothing was changed")
    if not fragments:
        msg = (
            f"{name}: no change fragment in {package_dir.relative_to(root)}/changes/; add one "
            "saying what changed (changes/README.md shows how), then bump"
        )
        raise ReleaseError(msg)
    old = version_of(name, root)
    uv_version = ("uv", "version", "--package", name, "--bump", part, "--frozen")
    new = Version(run(*uv_version, "--dry-run", "--short", cwd=root).strip())
    changelog = assembled_changelog(name, new, fragments, root)
    widened, lines = widened_ranges(name, new, root)
    written = [package_dir / "pyproject.toml", package_dir / "CHANGELOG.md", root / "uv.lock"]
    with restored_on_failure([*written, *widened, *fragments]):
        run(*uv_version, cwd=root)
        (package_dir / "CHANGELOG.md").write_text(changelog)
        for path, text in widened.items():
            path.write_text(text)
        for path in fragments:
            path.unlink()
        run("uv", "lock", cwd=root)
    return [f"{name}: {old} -> {new}, CHANGELOG.md assembled from its change fragments", *lines]


def assembled_changelog(
    name: str, version: Version, fragments: dict[Path, str], root: Path = ROOT
) -> str:
    """The member's CHANGELOG.md with a section for ``version``, made by towncrier from the
    fragments' texts in a scratch folder: towncrier never reads the package's ``changes/`` nor
    touches the repository."""
    package_dir = workspace.members(root)[name]
    with tempfile.TemporaryDirectory(prefix="release-changelog-") as tmp:
        scratch = Path(tmp)
        shutil.copyfile(package_dir / "pyproject.toml", scratch / "pyproject.toml")
        if (package_dir / "CHANGELOG.md").is_file():
            shutil.copyfile(package_dir / "CHANGELOG.md", scratch / "CHANGELOG.md")
        (scratch / "changes").mkdir()
        for path, text in fragments.items():
            (scratch / "changes" / path.name).write_text(text)
        run("git", "init", "-q", cwd=scratch)  # towncrier's `git rm`/`git add` stay in here
        towncrier = [sys.executable, "-m", "towncrier", "build", "--yes", "--version", str(version)]
        run(*towncrier, "--config", "pyproject.toml", "--dir", ".", cwd=scratch)
        return (scratch / "CHANGELOG.md").read_text()


def widened_ranges(name: str, new: Version, root: Path = ROOT) -> tuple[dict[Path, str], list[str]]:
    """The pyprojects of the dependents whose requirement on ``name`` (a dependency, or in one
    of their extras, such as serving's ``model[fast]``) excludes ``new``, with that requirement
    widened to :func:`compatible_range` (its extras and marker kept), and a line for each."""
    texts: dict[Path, str] = {}
    lines = []
    for dependent in workspace.order(root):
        path = workspace.members(root)[dependent] / "pyproject.toml"
        project = workspace.pyproject(dependent, root)["project"]
        extras = project.get("optional-dependencies", {}).values()
        for raw in [*project["dependencies"], *(r for extra in extras for r in extra)]:
            requirement = Requirement(raw)
            if requirement.name != name or requirement.specifier.contains(new):
                continue
            wanted = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            marker = f"; {requirement.marker}" if requirement.marker else ""
            updated = f"{name}{wanted}{compatible_range(new)}{marker}"
            text = texts.get(path, path.read_text())
            if text.count(f'"{raw}"') != 1:
                msg = f"{path.relative_to(root)}: cannot find the requirement {raw!r} to update"
                raise ReleaseError(msg)
            texts[path] = text.replace(f'"{raw}"', f'"{updated}"')
            lines.append(f"{dependent}: requires {updated} (bump {dependent} too)")
    return texts, lines


@contextlib.contextmanager
def restored_on_failure(paths: Iterable[Path]) -> Iterator[None]:
    """Run the block; when it fails, put each of ``paths`` back as it was (byte for byte, or
    absent)."""
    saved = {path: path.read_bytes() if path.is_file() else None for path in paths}
    try:
        yield
    except BaseException:
        for path, data in saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        raise


def refused(problems: Sequence[str], outcome: str) -> ReleaseError:
    """One error for ``problems``, saying ``outcome``: one line for one problem."""
    if len(problems) == 1:
        return ReleaseError(f"{problems[0]}; {outcome}")
    return ReleaseError(f"{outcome}:\n  " + "\n  ".join(problems))


def shown(items: Sequence[str], most: int = 5) -> str:
    """``items`` comma-separated, the first ``most`` of them and how many more."""
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


# --- build ----------------------------------------------------------------------------------

RELEASE_SOURCES = ("pyproject.toml", "uv.lock", "packages")  # what a build reads


def build(
    dist: Path, root: Path = ROOT, names: Sequence[str] | None = None, commit: str | None = None
) -> list[Path]:
    """Build the members ``names`` (default: all), and their SBOMs, into ``dist`` from a
    staged copy of the workspace (:func:`stage_sources`: ``commit``'s files, or the working
    tree's), after running each one's own ``[tool.release] before-build`` command there
    (``model`` bundles its default artifact); the source tree is never written."""
    names = workspace.order(root) if names is None else names
    with tempfile.TemporaryDirectory(prefix="release-stage-") as tmp:
        stage = Path(tmp)
        stage_sources(stage, root, commit)
        for name in names:
            command = workspace.pyproject(name, root).get("tool", {}).get("release", {})
            if "before-build" in command:
                package_dir = stage / workspace.members(root)[name].relative_to(root)
                argv = [a.format(package_dir=package_dir) for a in command["before-build"]]
                script = Path(sys.executable).with_name(argv[0])
                run(script if script.is_file() else argv[0], *argv[1:], cwd=root)
        dist.mkdir(parents=True, exist_ok=True)
        before = {p.name for p in dist.iterdir()}
        try:
            for name in names:
                run("uv", "build", "--package", name, "--out-dir", dist, cwd=stage)
                write_sbom(name, dist / sbom_name(name, root), stage)
        finally:  # what was built is this tool's to remove next time, even after a failure
            _record_built(dist, {p.name for p in dist.iterdir()} - before)
    return sorted(dist.iterdir())


def stage_sources(stage: Path, root: Path, commit: str | None) -> None:
    """Copy into ``stage`` what a build reads (:data:`RELEASE_SOURCES`): the files of
    ``commit``, or with ``None`` those of the working tree that git does not ignore (never a
    leftover build or bundled model)."""
    if commit is not None:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "--", *RELEASE_SOURCES],
            cwd=root,
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            msg = f"cannot stage commit {commit}: {archive.stderr.decode(errors='replace').strip()}"
            raise ReleaseError(msg)
        try:
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(stage, filter="data")
        except tarfile.TarError as error:  # a link out of the workspace, say
            msg = f"cannot stage commit {commit}: {error}"
            raise ReleaseError(msg) from None
        return
    listed = run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
        *RELEASE_SOURCES, cwd=root,
    )  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source, target = root / relative, stage / relative
        if source.is_symlink() or source.is_file():  # a deleted file is still listed
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)


def sbom_name(name: str, root: Path = ROOT) -> str:
    """The file name of a release's SBOM, beside its wheel."""
    return f"{name}-{version_of(name, root)}.cdx.json"


def write_sbom(name: str, path: Path, root: Path = ROOT) -> None:
    """A CycloneDX 1.5 SBOM of the package's locked closure (no dev tools), by uv."""
    run(
        "uv", "export", "--format", "cyclonedx1.5", "--preview-features", "sbom-export",
        "--package", name, "--frozen", "--no-dev", "--output-file", path, cwd=root,
    )  # fmt: skip


# --- check ----------------------------------------------------------------------------------


def release_files(name: str, version: Version) -> tuple[str, str]:
    """The file names of a release: its wheel and its sdist."""
    return f"{name}-{version}-py3-none-any.whl", f"{name}-{version}.tar.gz"


def wheel_of(name: str, dist: Path, root: Path = ROOT) -> Path:
    """The built wheel of a member at its current version."""
    wheel = dist / release_files(name, version_of(name, root))[0]
    if not wheel.is_file():
        msg = f"{name}: no wheel {wheel.name} in {dist}; the package did not build"
        raise ReleaseError(msg)
    return wheel


def check_metadata(dist: Path, root: Path = ROOT, names: Sequence[str] | None = None) -> list[str]:
    """Each wheel of ``names`` (default: all) carries the repository's LICENSE, and its
    requirements on siblings carry a range that admits their current version."""
    problems = []
    for name in workspace.order(root) if names is None else names:
        with zipfile.ZipFile(wheel_of(name, dist, root)) as wheel:
            meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = Parser().parsestr(wheel.read(meta_name).decode())
            problems += _license_problems(name, wheel, meta_name.rsplit("/", 1)[0], root)
        sdist = dist / release_files(name, version_of(name, root))[1]
        if not sdist.is_file():
            problems.append(f"{name}: no sdist {sdist.name}")
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.name not in workspace.members(root):
                continue
            current = version_of(requirement.name, root)
            if not str(requirement.specifier):
                problems.append(f"{name}: Requires-Dist {requirement.name} has no version range")
            elif not requirement.specifier.contains(current):
                problems.append(
                    f"{name}: Requires-Dist {requirement} does not admit {requirement.name} "
                    f"{current}; run `tools/release.py bump` or fix the range"
                )
    return problems


def _license_problems(name: str, wheel: zipfile.ZipFile, dist_info: str, root: Path) -> list[str]:
    licensed = f"{dist_info}/licenses/LICENSE"
    if licensed not in wheel.namelist():
        return [f"{name}: the wheel carries no license file ({licensed})"]
    if wheel.read(licensed) != (root / "LICENSE").read_bytes():
        return [f"{name}: the wheel's LICENSE differs from the repository's LICENSE"]
    return []


def check_model_artifact(dist: Path, root: Path = ROOT) -> list[str]:
    """The model wheel carries a default artifact made by this very version of model."""
    version = str(version_of("model", root))
    with zipfile.ZipFile(wheel_of("model", dist, root)) as wheel:
        names = set(wheel.namelist())
        manifest_name = "model/default_artifact/manifest.json"
        if manifest_name not in names:
            return ["model: the wheel has no trained default artifact (model/default_artifact/)"]
        manifest = json.loads(wheel.read(manifest_name))
    problems = []
    if manifest["versions"]["model"] != version:
        problems.append(
            f"model: the bundled artifact was made by model "
            f"{manifest['versions']['model']}, the wheel is {version}"
        )
    missing = [f for f in manifest["files"] if f"model/default_artifact/{f}" not in names]
    if missing:
        problems.append(f"model: the bundled artifact lacks {', '.join(missing)}")
    return problems


def check_changelogs(root: Path = ROOT) -> list[str]:
    """Each member's CHANGELOG.md has a section for the version being released."""
    problems = []
    for name in workspace.order(root):
        version = version_of(name, root)
        changelog = workspace.members(root)[name] / "CHANGELOG.md"
        text = changelog.read_text() if changelog.is_file() else ""
        if not re.search(rf"^## {re.escape(name)} {re.escape(str(version))} ", text, re.M):
            problems.append(
                f"{name}: {changelog.relative_to(root)} has no section for {version}; add "
                f"change fragments and run `tools/release.py bump {name} PART`"
            )
    return problems


def check_sboms(dist: Path, root: Path = ROOT, names: Sequence[str] | None = None) -> list[str]:
    """Each release of ``names`` (default: all) has its CycloneDX SBOM beside its wheel, for
    that package and version, listing each sibling it depends on at its current version."""
    problems = []
    for name in workspace.order(root) if names is None else names:
        path = dist / sbom_name(name, root)
        if not path.is_file():
            problems.append(f"{name}: no SBOM {path.name} beside its wheel")
            continue
        bom = json.loads(path.read_text())
        component = bom.get("metadata", {}).get("component", {})
        version = str(version_of(name, root))
        if bom.get("bomFormat") != "CycloneDX" or (
            component.get("name"),
            component.get("version"),
        ) != (name, version):
            problems.append(f"{name}: {path.name} is not a CycloneDX SBOM of {name} {version}")
            continue
        listed = {(c.get("name"), c.get("version")) for c in bom.get("components", [])}
        for sibling in sorted(workspace.closure(name, root) - {name}):
            if (sibling, str(version_of(sibling, root))) not in listed:
                problems.append(
                    f"{name}: {path.name} does not list {sibling} {version_of(sibling, root)}"
                )
    return problems


def check_unbumped(root: Path = ROOT) -> list[str]:
    """A member whose inputs changed since its release tag (:func:`changes_since`) must have a
    new version."""
    problems = []
    for name in workspace.order(root):
        version = version_of(name, root)
        tag = f"{name}-v{version}"
        changes = changes_since(name, tag, root) if tag_commit(tag, root) else []
        if changes:
            problems.append(
                f"{name}: changed since {tag} but kept version {version} ({shown(changes)}); "
                f"bump it: `tools/release.py bump {name} patch` (or minor, major)"
            )
    return problems


def changes_since(name: str, tag: str, root: Path = ROOT) -> list[str]:
    """What changed in ``name``'s inputs since ``tag``: each file of its folder (committed or
    not), and each package its locked closure reaches without going through a sibling, since
    a sibling's version matters only through the range in its folder."""
    folder = workspace.members(root)[name].relative_to(root).as_posix()
    changed = run("git", "diff", "-z", "--name-only", "--no-renames", tag, "--", folder, cwd=root)
    new = run("git", "ls-files", "-z", "--others", "--exclude-standard", "--", folder, cwd=root)
    files = sorted(set(filter(None, (changed + new).split("\0"))))
    locked = subprocess.run(
        ["git", "show", f"{tag}:uv.lock"], cwd=root, capture_output=True, text=True, check=False
    )
    siblings = set(workspace.members(root)) - {name}
    before, now = (
        affected.lock_closures(text, [name], siblings)[name]
        for text in (
            locked.stdout if locked.returncode == 0 else "",
            (root / "uv.lock").read_text(),
        )
    )
    return files + _lock_differences(before, now)


def _lock_differences(before: frozenset[str], now: frozenset[str]) -> list[str]:
    """``locked NAME OLD -> NEW`` for each package whose locked entries differ."""

    def versions(entries: frozenset[str]) -> dict[str, str]:
        found: dict[str, list[str]] = {}
        for entry in map(json.loads, entries):
            found.setdefault(entry["name"], []).append(str(entry.get("version", "?")))
        return {name: ", ".join(sorted(found[name])) for name in found}

    old, new = versions(before), versions(now)
    lines = []
    for name in sorted({json.loads(entry)["name"] for entry in before ^ now}):
        if old.get(name) == new.get(name):
            lines.append(f"locked {name} {new[name]}: its entry in uv.lock")
        else:
            lines.append(f"locked {name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}")
    return lines


def check_install(dist: Path) -> list[str]:
    """The wheels, installed together in a fresh environment, import and start their commands."""
    with tempfile.TemporaryDirectory(prefix="release-venv-") as tmp:
        venv = Path(tmp) / "venv"
        run("uv", "venv", "--quiet", "--python", sys.executable, venv)
        python = venv / "bin" / "python"
        wheels = sorted(dist.glob("*.whl"))
        try:
            run(
                "uv",
                "pip",
                "install",
                "--quiet",
                "--python",
                python,
                "--offline",
                "--find-links",
                dist,
                *wheels,
            )
        except ReleaseError as error:
            return [f"the wheels do not install together: {error}"]
        problems = []
        try:
            imports = ", ".join(workspace.order(ROOT))  # each member imports as its name
            run(python, "-c", f"import {imports}; model.load_default()")
        except ReleaseError as error:
            problems.append(f"the installed wheels do not import: {error}")
        for script in (s for names in workspace.scripts(ROOT).values() for s in names):
            try:
                run(venv / "bin" / script, "--help")
            except ReleaseError as error:
                problems.append(f"console script {script} does not start: {error}")
        return problems


def check(dist: Path, root: Path = ROOT) -> list[str]:
    """Every release check, on wheels (and SBOMs) freshly built into ``dist``."""
    problems = check_unbumped(root) + check_changelogs(root) + check_fragments(root)
    try:
        build(dist, root)
    except ReleaseError as error:
        return [*problems, f"build failed: {error}"]
    problems += check_metadata(dist, root) + check_model_artifact(dist, root)
    return problems + check_sboms(dist, root) + check_install(dist)


# --- publish --------------------------------------------------------------------------------


CREDENTIAL_VARIABLES = (
    "UV_PUBLISH_USERNAME",
    "UV_PUBLISH_PASSWORD",
    "UV_PUBLISH_TOKEN",
    "UV_INDEX_PRIVATE_USERNAME",
    "UV_INDEX_PRIVATE_PASSWORD",
)
# Index URLs uv reads (some as space-separated lists, some as ``name=url`` entries).
URL_VARIABLES = (
    "UV_PUBLISH_URL",
    "UV_INDEX_PRIVATE_URL",
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
)
LOOPBACK = ("localhost", "127.0.0.1", "::1")
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
SHORT_SECRET = 4


def secrets_in_environment() -> list[str]:
    """Every credential this tool could come across: user names, passwords, tokens, and
    credentials written into index URLs (:func:`_url_secrets`)."""
    found = [os.environ[name] for name in CREDENTIAL_VARIABLES if os.environ.get(name)]
    for name in URL_VARIABLES:
        for url in os.environ.get(name, "").split():
            found += _url_secrets(url)
    return sorted(set(found), key=len, reverse=True)


def _url_secrets(url: str) -> list[str]:
    """What ``url`` (or a ``name=url`` entry) carries that could be a credential: its
    userinfo, user and password, its query string and each value in it, as written and
    unquoted. Read by hand, not with urlsplit: a malformed URL (``http://u:p@[oops/``) must
    still have its credentials found, and redacting must never raise."""
    found = []
    userinfo = re.search(r"//([^/?#]*)@", url)
    if userinfo:
        user, _, password = userinfo.group(1).partition(":")
        found += [userinfo.group(1), user, password]
    query = url.partition("?")[2].partition("#")[0]
    values = [pair.partition("=")[2] for pair in query.split("&")]
    found += [part for part in (query, *values) if len(part) >= SHORT_SECRET]
    found = [part for part in found if part]
    return found + [urllib.parse.unquote(part) for part in found]


def redact(text: str) -> str:
    """``text`` with every secret of :func:`secrets_in_environment` replaced by ``***``."""
    for secret in secrets_in_environment():
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            if len(form) >= SHORT_SECRET:
                text = text.replace(form, "***")
            else:  # a very short one only where it stands alone, or every "u" would go
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])", "***", text)
    return text


def masked(url: str) -> str:
    """``url`` as it may be shown: its userinfo and its query string (where tokens go) as
    ``***``."""
    url = re.sub(r"^(\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//)[^/?#]*@", r"\1***@", url)
    return re.sub(r"\?[^#]*", "?***", url, count=1)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address; not any name that merely starts with ``127.``."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but keep the credentials only on the origin they were meant for."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: Any,  # noqa: ANN401 - urllib's signature
        code: int,
        msg: str,
        headers: Any,  # noqa: ANN401
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", auth)
        return new


def _split(url: str, variable: str) -> urllib.parse.SplitResult:
    """``url`` split, or an error naming ``variable`` when it is no http(s) URL with a host."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        msg = f"{variable} is not a valid URL (check the host and port)"
        raise ReleaseError(msg) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = f"{variable} must be an http(s) URL with a host"
        raise ReleaseError(msg)
    return parts


def publish_url() -> str:
    """``UV_PUBLISH_URL``, where uv uploads; refused when it is plain http to another machine,
    since the upload carries the credentials."""
    url = os.environ.get("UV_PUBLISH_URL")
    if not url:
        msg = "UV_PUBLISH_URL is not set: the upload URL of the private index"
        raise ReleaseError(msg)
    parts = _split(url, "UV_PUBLISH_URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        msg = (
            f"refusing to send the upload credentials over plain http to {parts.hostname}; "
            "use an https UV_PUBLISH_URL (plain http is for this machine only)"
        )
        raise ReleaseError(msg)
    return url


def private_index_url() -> str:
    """The private index's simple URL, as uv takes it: ``UV_INDEX_PRIVATE_URL``, else the entry
    named ``private`` in ``UV_INDEX`` (space-separated ``name=url`` entries)."""
    url = os.environ.get("UV_INDEX_PRIVATE_URL")
    if url:
        return url
    for entry in os.environ.get("UV_INDEX", "").split():
        name, _, value = entry.partition("=")
        if name == "private" and value:
            return value
    msg = (
        "the private index is not set: UV_INDEX_PRIVATE_URL (or UV_INDEX=private=URL) is the "
        "simple index URL of the private index"
    )
    raise ReleaseError(msg)


def _index_location() -> tuple[urllib.parse.SplitResult, str, str]:
    """The private index's URL without credentials (its query kept), and the user and
    password to read it with (``UV_INDEX_PRIVATE_USERNAME``/``_PASSWORD``, or those written in
    the URL), never the upload ones; refused when they would cross plain http to another
    machine."""
    variable = "UV_INDEX_PRIVATE_URL" if os.environ.get("UV_INDEX_PRIVATE_URL") else "UV_INDEX"
    parts = _split(private_index_url(), variable)
    host = parts.hostname or ""
    user = os.environ.get("UV_INDEX_PRIVATE_USERNAME") or urllib.parse.unquote(parts.username or "")
    password = os.environ.get("UV_INDEX_PRIVATE_PASSWORD") or urllib.parse.unquote(
        parts.password or ""
    )
    if (user or password) and parts.scheme == "http" and not _is_loopback(host):
        msg = (
            f"refusing to send the index credentials over plain http to {host}; "
            f"use an https {variable}"
        )
        raise ReleaseError(msg)
    return parts._replace(netloc=_bare_netloc(parts), fragment=""), user, password


def _bare_netloc(parts: urllib.parse.SplitResult) -> str:
    """The host and port of a URL, without its userinfo."""
    host = parts.hostname or ""
    return (host if ":" not in host else f"[{host}]") + (f":{parts.port}" if parts.port else "")


def index_request(name: str) -> urllib.request.Request:
    """The request for ``name``'s page on the simple index (:func:`private_index_url`), with
    the index's read credentials (:func:`_index_location`)."""
    parts, user, password = _index_location()
    page = parts._replace(path=f"{parts.path.rstrip('/')}/{name}/")
    request = urllib.request.Request(urllib.parse.urlunsplit(page))
    if user or password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def check_url() -> str:
    """The simple index URL for ``uv publish --check-url``, with the read credentials written
    in: uv sends no others there, and an index that answers 401 makes it upload blind."""
    parts, user, password = _index_location()
    if user or password:
        userinfo = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        parts = parts._replace(netloc=f"{userinfo}@{parts.netloc}")
    return urllib.parse.urlunsplit(parts)


def index_files(name: str) -> set[str]:
    """The file names the index lists for ``name`` (none on a 404), read with the read
    credentials before anything is built: an unreachable index or a refusal stops the run."""
    request = index_request(name)
    handlers: list[urllib.request.BaseHandler] = [_SameOriginAuth()]
    if request.type == "http":  # only this machine (index_request): never through a proxy
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=30) as response:
            page = response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response and its socket
        if error.code == 404:
            return set()
        msg = (
            f"the index answered HTTP {error.code} for {name}; "
            "check UV_INDEX_PRIVATE_URL and UV_INDEX_PRIVATE_USERNAME/_PASSWORD"
        )
        raise ReleaseError(msg) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        msg = f"cannot read the index for {name}: {reason}"
        raise ReleaseError(msg) from None
    links = re.findall(r"""href=["']([^"'#]*)""", page)
    return {urllib.parse.unquote(link.rstrip("/").rsplit("/", 1)[-1]) for link in links}


MISMATCH = re.compile(r"Local file and index file do not match for `([^`]+)`")


def upload(file: Path, root: Path = ROOT, *, released: bool = False) -> str:
    """``uv publish`` one file, unless the index holds it already (``--check-url``): returns
    ``"uploaded"`` or ``"skipped"``. A different file under the same name is never
    overwritten: refused, or kept when ``released`` (the release tag is on the commit being
    built, so the index's file was built from the same sources; a rebuilt model artifact
    differs in its bytes)."""
    result = subprocess.run(
        ["uv", "publish", str(file)],
        cwd=root,
        env=_upload_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return "skipped" if "already exists, skipping" in result.stderr else "uploaded"
    if released and MISMATCH.search(result.stderr):
        return "skipped"
    msg = f"upload refused: {_uv_reason(result.stderr or result.stdout)}"
    if MISMATCH.search(result.stderr):
        msg += " (the index holds another build of this version: bump the version)"
    raise ReleaseError(msg)


def _upload_env() -> dict[str, str]:
    """uv's environment for an upload: the check URL (:func:`check_url`); credentials written
    in ``UV_PUBLISH_URL`` moved to ``UV_PUBLISH_USERNAME``/``_PASSWORD`` where those are unset
    (uv 0.13 sends them from the URL still percent-encoded); no proxy for plain http, which
    goes to this machine only (:func:`publish_url`)."""
    env = {**os.environ, "UV_PUBLISH_CHECK_URL": check_url()}
    upload_url = urllib.parse.urlsplit(publish_url())
    if upload_url.username is not None or upload_url.password is not None:
        env["UV_PUBLISH_URL"] = urllib.parse.urlunsplit(
            upload_url._replace(netloc=_bare_netloc(upload_url))
        )
        for variable, value in (
            ("UV_PUBLISH_USERNAME", upload_url.username),
            ("UV_PUBLISH_PASSWORD", upload_url.password),
        ):
            env[variable] = env.get(variable) or urllib.parse.unquote(value or "")
    if "http" in {upload_url.scheme, urllib.parse.urlsplit(env["UV_PUBLISH_CHECK_URL"]).scheme}:
        for name in PROXY_VARIABLES:
            env.pop(name, None)
    return env


def _uv_reason(output: str) -> str:
    """Why uv failed, in one line: its last ``error:`` or ``cause:`` line, without the page
    the server sent."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(("error:", "cause:"))]
    reason = (reasons or lines or ["uv publish failed"])[-1]
    reason = reason.removeprefix("error: ").removeprefix("cause: ")
    return reason.split(" Server says:", 1)[0]


def tag_commit(tag: str, root: Path = ROOT) -> str | None:
    """The commit ``tag`` points at, or None when there is no such tag."""
    found = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


@dataclass(frozen=True)
class Release:
    """A member at its current version, and the commit its release tag points at, if any."""

    name: str
    version: Version
    tagged: str | None

    @property
    def tag(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def files(self) -> tuple[str, str]:
        return release_files(self.name, self.version)


def releases(root: Path = ROOT) -> list[Release]:
    """Every member's release at its current version, in dependency order."""
    found = []
    for name in workspace.order(root):
        version = version_of(name, root)
        found.append(Release(name, version, tag_commit(f"{name}-v{version}", root)))
    return found


# Where uncommitted work would end up in a release: the packages, the tool, the workspace and
# its lock, and what the before-build commands read (the bundled model's config and data).
COMMITTED = ("packages", "tools", "pyproject.toml", "uv.lock", "configs", "data")


def uncommitted(root: Path = ROOT) -> list[str]:
    """The paths under :data:`COMMITTED` with changes git sees: edits, staged or not, and new
    files git does not ignore."""
    status = run(
        "git", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *COMMITTED,
        cwd=root,
    )  # fmt: skip
    paths, entries = [], iter(status.split("\0"))
    for entry in entries:
        if entry:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy: its source follows
                next(entries, None)
    return sorted(paths)


def tag_release(release: Release, commit: str, root: Path = ROOT) -> None:
    """Tag ``commit`` as ``release``: only when that commit holds the release's version."""
    pyproject = workspace.members(root)[release.name].relative_to(root) / "pyproject.toml"
    held = tomllib.loads(run("git", "show", f"{commit}:{pyproject.as_posix()}", cwd=root))
    if Version(held["project"]["version"]) != release.version:
        msg = (
            f"{release.name}: commit {commit} holds version {held['project']['version']}, "
            f"not {release.version}; not tagged"
        )
        raise ReleaseError(msg)
    run(
        "git", "tag", "-a", release.tag, "-m", f"{release.name} {release.version}", commit, cwd=root
    )


def publish(dist: Path, root: Path = ROOT, *, tag: bool = True) -> list[str]:
    """Publish, in dependency order, each member whose version has no release tag yet (built
    from the commit being published, checked, uploaded, then tagged on that commit), and each
    release tagged on that very commit whose files the index lacks. A member released before
    and unchanged since (:func:`changes_since`) is skipped, never rebuilt; when the index
    lacks its files, the line names the command that publishes it from its tag. Files the
    index has are skipped (uv's ``--check-url``), never overwritten. Every check that can fail
    (settings, a clean tree, unbumped changes, changelogs and fragments, the index and its read
    credentials, the built wheels and SBOMs) runs before the first upload."""
    report = [f"publishing to {masked(publish_url())}, reading {masked(private_index_url())}"]
    _index_location()  # the read side's settings, checked before anything else is done
    dirty = uncommitted(root)
    if dirty:
        msg = (
            f"uncommitted changes in {shown(dirty)}: only committed work is published; commit "
            "them (or stash them) and publish again (nothing was built)"
        )
        raise ReleaseError(msg)
    commit = run("git", "rev-parse", "HEAD", cwd=root).strip()
    problems = check_unbumped(root) + check_changelogs(root) + check_fragments(root)
    if problems:
        raise refused(problems, "nothing was uploaded")
    listed = {r: index_files(r.name) for r in releases(root)}  # reachable and readable
    missing = {r: [f for f in r.files if f not in files] for r, files in listed.items()}
    pending = [r for r in missing if r.tagged is None or (r.tagged == commit and missing[r])]
    if pending:
        build_and_check(pending, dist, commit, root)
    for release, lacking in missing.items():
        if release in pending:
            report += upload_and_tag(release, dist, commit, root, tag=tag)
        else:
            report.append(_released(release, lacking))
    return report


def _released(release: Release, missing: Sequence[str]) -> str:
    """The line for a release published before and unchanged since."""
    line = f"{release.name} {release.version}: released ({release.tag}), unchanged since"
    if not missing:
        return f"{line}, on the index: skipped"
    command = (
        f"git worktree add --detach ../{release.tag} {release.tag} && cd ../{release.tag} "
        "&& tox -e publish"
    )
    return f"{line}; the index lacks {', '.join(missing)}: publish it from its tag: `{command}`"


def build_and_check(pending: Sequence[Release], dist: Path, commit: str, root: Path) -> None:
    """Build ``pending`` from ``commit`` and check the wheels and SBOMs, before any upload."""
    names = [release.name for release in pending]
    build(dist, root, names, commit)
    problems = check_metadata(dist, root, names) + check_sboms(dist, root, names)
    problems += check_model_artifact(dist, root) if "model" in names else []
    if problems:
        raise refused(problems, "nothing was uploaded")


def upload_and_tag(
    release: Release, dist: Path, commit: str, root: Path, *, tag: bool
) -> list[str]:
    """Upload the files of ``release`` that the index lacks, then tag it on ``commit`` unless
    it is tagged already (or ``tag`` is false); returns the report's lines."""
    try:
        outcomes = [
            upload(dist / file, root, released=release.tagged is not None) for file in release.files
        ]
    except ReleaseError as error:
        msg = f"{release.name} {release.version}: {error}"
        raise ReleaseError(msg) from None
    done = "published" if "uploaded" in outcomes else "already on the index, skipped"
    lines = [f"{release.name} {release.version}: {done} (SBOM {sbom_name(release.name, root)})"]
    if tag and release.tagged is None:
        tag_release(release, commit, root)
        lines.append(f"{release.name} {release.version}: tagged {release.tag}")
    return lines


# --- command line ---------------------------------------------------------------------------

DIST_MARKER = ".made-by-release-tool"


def fresh_dist(path: Path) -> Path:
    """The build folder at ``path``, rid of what this tool built there before. The tool
    deletes only files it made (listed in :data:`DIST_MARKER`) and never a folder: a folder
    that holds anything else is refused, unless it holds the marker (then the rest is the
    user's, and stays)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        msg = f"--dist {path}: exists and is not a folder"
        raise ReleaseError(msg)
    marker = path / DIST_MARKER
    if path.exists() and any(path.iterdir()) and not marker.is_file():
        msg = (
            f"--dist {path}: the folder holds files this tool did not make; refusing to use "
            "it. Give a new or empty folder"
        )
        raise ReleaseError(msg)
    path.mkdir(parents=True, exist_ok=True)
    for name in _built(path):
        (path / name).unlink(missing_ok=True)
    marker.write_text(MARKER_TEXT)
    return path


MARKER_TEXT = "# made by tools/release.py: the files below are its own, removed on its next run\n"


def _built(dist: Path) -> list[str]:
    """The files the tool built into ``dist`` (plain names, as listed in its marker)."""
    marker = dist / DIST_MARKER
    lines = marker.read_text().splitlines() if marker.is_file() else []
    return [n for n in lines if n and not n.startswith("#") and Path(n).name == n]


def _record_built(dist: Path, made: set[str]) -> None:
    names = sorted({*_built(dist), *made} - {DIST_MARKER})
    (dist / DIST_MARKER).write_text(MARKER_TEXT + "".join(f"{n}\n" for n in names))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``bump``, ``check`` or ``publish``."""
    parser = argparse.ArgumentParser(prog="release", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bump_cmd = commands.add_parser("bump", help="bump one package, update dependents, re-lock")
    bump_cmd.add_argument("package", choices=ORDER)
    bump_cmd.add_argument("part", choices=["major", "minor", "patch"])
    for name, text in (("check", "run every release check"), ("publish", "publish to the index")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dist", type=Path, default=ROOT / "dist", help="build output")
    commands.choices["publish"].add_argument(
        "--no-tag", action="store_true", help="do not create git tags"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "bump":
            lines = bump(args.package, args.part)
        elif args.command == "check":
            problems = check(fresh_dist(args.dist))
            if problems:
                print(redact("\n  ".join(["release check failed:", *problems])), file=sys.stderr)
                return 1
            lines = [f"release check passed: {', '.join(f'{n} {version_of(n)}' for n in ORDER)}"]
        else:
            lines = publish(fresh_dist(args.dist), tag=not args.no_tag)
    except ReleaseError as error:
        print(redact(f"error: {error}"), file=sys.stderr)
        return 1
    except Exception as error:  # never a traceback: it could carry a secret
        print(redact(f"error: unexpected {type(error).__name__}: {error}"), file=sys.stderr)
        return 1
    print(redact("\n".join(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
