"""Release tooling for the workspace: bump a package, check a release, publish to the index.

    uv run python tools/release.py bump model minor     # + sibling ranges + uv.lock
    uv run python tools/release.py check                # what `tox -e release-check` runs
    uv run python tools/release.py publish              # what `tox -e publish` runs

Packages are released in dependency order, read from the members' pyprojects
(``tools/workspace.py``); each is tagged ``<name>-v<version>`` once published.
The index comes from uv's own variables, never from committed files: ``UV_PUBLISH_URL`` (upload),
``UV_PUBLISH_USERNAME``/``UV_PUBLISH_PASSWORD`` (or ``UV_PUBLISH_TOKEN``) for uploads, and
``UV_INDEX_PRIVATE_URL`` (or the ``private`` entry of ``UV_INDEX``) with
``UV_INDEX_PRIVATE_USERNAME``/``UV_INDEX_PRIVATE_PASSWORD`` (the simple index, read to see what
is already there). Credentials are sent only to the host they
belong to, over https unless that host is this machine, and no secret is ever printed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from email.parser import Parser
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

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


# --- bump -----------------------------------------------------------------------------------


def bump(name: str, part: str, root: Path = ROOT) -> list[str]:
    """Bump ``name`` with ``uv version``; widen dependents' ranges that exclude the new version;
    re-lock. Returns what changed, as lines."""
    if name not in workspace.members(root):
        msg = f"unknown package {name!r}; choose one of {', '.join(workspace.order(root))}"
        raise ReleaseError(msg)
    package_dir = workspace.members(root)[name]
    if not change_fragments(name, root):
        msg = (
            f"{name}: no change fragment in {package_dir.relative_to(root)}/changes/; add one "
            "saying what changed (changes/README.md shows how), then bump"
        )
        raise ReleaseError(msg)
    old = version_of(name, root)
    run("uv", "version", "--package", name, "--bump", part, "--frozen", cwd=root)
    new = version_of(name, root)
    towncrier = [sys.executable, "-m", "towncrier", "build", "--yes", "--version", str(new)]
    run(*towncrier, "--config", "pyproject.toml", "--dir", ".", cwd=package_dir)
    changes = [f"{name}: {old} -> {new}, CHANGELOG.md assembled from its change fragments"]
    for dependent in workspace.order(root):
        path = workspace.members(root)[dependent] / "pyproject.toml"
        for raw in workspace.pyproject(dependent, root)["project"]["dependencies"]:
            requirement = Requirement(raw)
            if requirement.name != name or requirement.specifier.contains(new):
                continue
            updated = f"{name}{compatible_range(new)}"
            text = path.read_text()
            if text.count(f'"{raw}"') != 1:
                msg = f"{path}: cannot find the requirement {raw!r} to update"
                raise ReleaseError(msg)
            path.write_text(text.replace(f'"{raw}"', f'"{updated}"'))
            changes.append(f"{dependent}: requires {updated} (bump {dependent} too)")
    run("uv", "lock", cwd=root)
    return changes


def change_fragments(name: str, root: Path = ROOT) -> list[Path]:
    """The member's change fragments not yet in its changelog (``changes/<id>.<type>.md``)."""
    folder = workspace.members(root)[name] / "changes"
    return sorted(
        f for f in folder.glob("*.md") if f.name != "README.md" and not f.name.startswith(".")
    )


# --- build ----------------------------------------------------------------------------------


def build(dist: Path, root: Path = ROOT) -> list[Path]:
    """Build every package, and its SBOM, into ``dist`` from a staged copy of the workspace,
    after running each member's own ``[tool.release] before-build`` command there (``model``
    bundles its default artifact); the source tree is never written."""
    with tempfile.TemporaryDirectory(prefix="release-stage-") as tmp:
        stage = Path(tmp)
        for item in ("pyproject.toml", "uv.lock", "README.md"):
            shutil.copy2(root / item, stage / item)
        shutil.copytree(
            root / "packages",
            stage / "packages",
            ignore=shutil.ignore_patterns(
                "default_artifact", "__pycache__", "*.pyc", ".pytest_cache"
            ),
        )
        for name in workspace.order(root):
            command = workspace.pyproject(name, root).get("tool", {}).get("release", {})
            if "before-build" in command:
                package_dir = stage / workspace.members(root)[name].relative_to(root)
                argv = [a.format(package_dir=package_dir) for a in command["before-build"]]
                script = Path(sys.executable).with_name(argv[0])
                run(script if script.is_file() else argv[0], *argv[1:], cwd=root)
        dist.mkdir(parents=True, exist_ok=True)
        before = {p.name for p in dist.iterdir()}
        try:
            run("uv", "build", "--all-packages", "--out-dir", dist, cwd=stage)
            for name in workspace.order(root):
                write_sbom(name, dist / sbom_name(name, root), stage)
        finally:  # what was built is this tool's to remove next time, even after a failure
            _record_built(dist, {p.name for p in dist.iterdir()} - before)
    return sorted(dist.iterdir())


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


def wheel_of(name: str, dist: Path, root: Path = ROOT) -> Path:
    """The built wheel of a member at its current version."""
    wheel = dist / f"{name}-{version_of(name, root)}-py3-none-any.whl"
    if not wheel.is_file():
        msg = f"{name}: no wheel {wheel.name} in {dist}; the package did not build"
        raise ReleaseError(msg)
    return wheel


def check_metadata(dist: Path, root: Path = ROOT) -> list[str]:
    """Each wheel carries the repository's LICENSE, and its requirements on siblings carry a
    range that admits their current version."""
    problems = []
    for name in workspace.order(root):
        with zipfile.ZipFile(wheel_of(name, dist, root)) as wheel:
            meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = Parser().parsestr(wheel.read(meta_name).decode())
            problems += _license_problems(name, wheel, meta_name.rsplit("/", 1)[0], root)
        sdist = dist / f"{name}-{version_of(name, root)}.tar.gz"
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


def check_sboms(dist: Path, root: Path = ROOT) -> list[str]:
    """Each release has its CycloneDX SBOM beside its wheel, for that package and version,
    listing each sibling it depends on at its current version."""
    problems = []
    for name in workspace.order(root):
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


def check_versions_bumped(root: Path = ROOT) -> list[str]:
    """A package whose files changed since its release tag must have a new version."""
    problems = []
    for name in workspace.order(root):
        tag = f"{name}-v{version_of(name, root)}"
        if tag_commit(tag, root) is None:
            continue
        changed = (
            subprocess.run(
                ["git", "diff", "--quiet", tag, "--", workspace.members(root)[name]],
                cwd=root,
                check=False,
            ).returncode
            != 0
        )
        if changed:
            problems.append(
                f"{name}: files changed since {tag} but the version is still "
                f"{version_of(name, root)}; run `tools/release.py bump {name} patch`"
            )
    return problems


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
    problems = check_versions_bumped(root) + check_changelogs(root)
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
URL_VARIABLES = ("UV_PUBLISH_URL", "UV_INDEX_PRIVATE_URL")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def secrets_in_environment() -> list[str]:
    """Every credential this tool could come across: user names, passwords, tokens, and
    credentials written into index URLs."""
    found = [os.environ[name] for name in CREDENTIAL_VARIABLES if os.environ.get(name)]
    for name in URL_VARIABLES:
        # Read by hand, not with urlsplit: a malformed URL (``http://u:p@[oops/``) must still
        # have its credentials found, and redacting must never raise.
        match = re.match(r"\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)@", os.environ.get(name, ""))
        if match:
            userinfo = match.group(1)
            user, _, password = userinfo.partition(":")
            parts = [p for p in (userinfo, user, password) if p]
            found += parts + [urllib.parse.unquote(p) for p in parts]
    return sorted(set(found), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret of :func:`secrets_in_environment` replaced by ``***``."""
    for secret in secrets_in_environment():
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            if len(form) >= SHORT_SECRET:
                text = text.replace(form, "***")
            else:  # a very short one only where it stands alone, or every "u" would go
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])", "***", text)
    return text


SHORT_SECRET = 4


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


def _index_location() -> tuple[str, str, str]:
    """The private index's URL without credentials, and the user and password to read it
    with (``UV_INDEX_PRIVATE_USERNAME``/``_PASSWORD``, or those written in the URL), never
    the upload ones; refused when they would cross plain http to another machine."""
    raw = private_index_url()
    try:
        parts = urllib.parse.urlsplit(raw)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        msg = "UV_INDEX_PRIVATE_URL is not a valid URL (check the host and port)"
        raise ReleaseError(msg) from None
    if parts.scheme not in {"http", "https"} or not host:
        msg = "UV_INDEX_PRIVATE_URL must be an http(s) URL with a host"
        raise ReleaseError(msg)
    user = os.environ.get("UV_INDEX_PRIVATE_USERNAME") or urllib.parse.unquote(parts.username or "")
    password = os.environ.get("UV_INDEX_PRIVATE_PASSWORD") or urllib.parse.unquote(
        parts.password or ""
    )
    if (user or password) and parts.scheme == "http" and not _is_loopback(host):
        msg = (
            f"refusing to send the index credentials over plain http to {host}; "
            "use an https UV_INDEX_PRIVATE_URL"
        )
        raise ReleaseError(msg)
    netloc = host if ":" not in host else f"[{host}]"
    netloc += f":{port}" if port else ""
    base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return base, user, password


def index_request(name: str) -> urllib.request.Request:
    """The request for ``name``'s page on the simple index (:func:`private_index_url`), with
    the index's read credentials (:func:`_index_location`)."""
    base, user, password = _index_location()
    request = urllib.request.Request(f"{base.rstrip('/')}/{name}/")
    if user or password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def check_url() -> str:
    """The simple index URL for ``uv publish --check-url``, with the read credentials written
    in: uv sends no others there, and an index that answers 401 makes it upload blind."""
    base, user, password = _index_location()
    if not (user or password):
        return base
    parts = urllib.parse.urlsplit(base)
    userinfo = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def check_index(name: str) -> None:
    """The index answers for ``name`` (a page or 404) with the read credentials, before
    anything is uploaded; which files it already has is left to ``uv publish --check-url``."""
    request = index_request(name)
    handlers: list[urllib.request.BaseHandler] = [_SameOriginAuth()]
    if request.type == "http":  # only this machine (index_request): never through a proxy
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=30):
            pass
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response and its socket
        if error.code == 404:
            return
        msg = (
            f"the index answered HTTP {error.code} for {name}; "
            "check UV_INDEX_PRIVATE_URL and UV_INDEX_PRIVATE_USERNAME/_PASSWORD"
        )
        raise ReleaseError(msg) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        msg = f"cannot read the index for {name}: {reason}"
        raise ReleaseError(msg) from None


MISMATCH = re.compile(r"Local file and index file do not match for `([^`]+)`")


def upload(file: Path, root: Path = ROOT, *, released: bool = False) -> str:
    """``uv publish`` one file, unless the index holds it already (``--check-url``): returns
    ``"uploaded"`` or ``"skipped"``. A different file under the same name is never
    overwritten: refused, or kept when ``released`` (this very commit carries the release tag,
    so the index's file was built from the same sources; a rebuilt model artifact differs in
    its bytes)."""
    env = {**os.environ, "UV_PUBLISH_CHECK_URL": check_url()}
    result = subprocess.run(
        ["uv", "publish", str(file)], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        return "skipped" if "already exists, skipping" in result.stderr else "uploaded"
    if released and MISMATCH.search(result.stderr):
        return "skipped"
    detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
    msg = f"upload refused: {detail[-1] if detail else 'uv publish failed'}"
    if MISMATCH.search(result.stderr):
        msg += " (the index holds another build of this version: bump the version)"
    raise ReleaseError(msg)


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


def check_tags(root: Path = ROOT) -> list[str]:
    """Release tags that exist must point at the commit being published: the same versions
    can then go to another index, but never a version built from other sources."""
    head = run("git", "rev-parse", "HEAD", cwd=root).strip()
    problems = []
    for name in workspace.order(root):
        tag = f"{name}-v{version_of(name, root)}"
        commit = tag_commit(tag, root)
        if commit is not None and commit != head:
            problems.append(
                f"tag {tag} points at commit {commit}, but the commit being published is "
                f"{head}: check out {tag} to publish that release again, or bump {name}"
            )
    return problems


def publish(dist: Path, root: Path = ROOT, *, tag: bool = True) -> list[str]:
    """Upload each package's files that the index lacks, in dependency order, then tag each
    release that has no tag yet. A file already there is skipped (uv's ``--check-url``),
    never overwritten, so the same release can be published to a second index. Every check
    that can fail (settings, tags, versions, changelogs, the index and its credentials, the
    built wheels and SBOMs) runs before the first upload."""
    if not os.environ.get("UV_PUBLISH_URL"):
        msg = "UV_PUBLISH_URL is not set: the upload URL of the private index"
        raise ReleaseError(msg)
    problems = check_tags(root) + check_versions_bumped(root) + check_changelogs(root)
    if problems:
        raise ReleaseError("nothing was uploaded:\n  " + "\n  ".join(problems))
    names = workspace.order(root)
    for name in names:  # reachable, and the read credentials work
        check_index(name)
    build(dist, root)
    problems = check_metadata(dist, root) + check_model_artifact(dist, root)
    problems += check_sboms(dist, root)
    if problems:
        raise ReleaseError("nothing was uploaded:\n  " + "\n  ".join(problems))
    report = []
    for name in names:
        version = version_of(name, root)
        files = [wheel_of(name, dist, root), dist / f"{name}-{version}.tar.gz"]
        released = tag_commit(f"{name}-v{version}", root) is not None  # at HEAD: check_tags
        try:
            outcomes = [upload(file, root, released=released) for file in files]
        except ReleaseError as error:
            msg = f"{name} {version}: {error}"
            raise ReleaseError(msg) from None
        sbom = sbom_name(name, root)
        if "uploaded" not in outcomes:
            report.append(f"{name} {version}: already on the index, skipped (SBOM {sbom})")
        else:
            report.append(f"{name} {version}: published (SBOM {sbom}, beside the wheel)")
    for name in names if tag else ():
        version = version_of(name, root)
        if tag_commit(f"{name}-v{version}", root) is None:
            run("git", "tag", "-a", f"{name}-v{version}", "-m", f"{name} {version}", cwd=root)
            report.append(f"{name} {version}: tagged {name}-v{version}")
    return report


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
