"""The release tool's checks, each shown failing on a workspace that really has the problem."""

import base64
import http.server
import importlib.util
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serving.testing import free_port

from .conftest import GIT, ROOT

sys.path.insert(0, str(ROOT / "tools"))  # as when run as a script: `workspace` beside it
spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
assert spec is not None
assert spec.loader is not None
release = importlib.util.module_from_spec(spec)
sys.modules["release"] = release
spec.loader.exec_module(release)


def test_compatible_range() -> None:
    assert release.compatible_range(release.Version("0.2.0")) == ">=0.2,<0.3"
    assert release.compatible_range(release.Version("1.4.2")) == ">=1.4,<2"


def fragment(snapshot: Path, name: str, text: str, kind: str = "feature") -> None:
    (snapshot / "packages" / name / "changes" / f"+{kind}-1.{kind}.md").write_text(text)


def test_bump_updates_dependents_and_lock(snapshot: Path) -> None:
    fragment(snapshot, "features", "Integer categories.")
    changes = release.bump("features", "minor", snapshot)
    assert changes[0] == (
        "features: 0.1.0 -> 0.2.0, CHANGELOG.md assembled from its change fragments"
    )
    assert changes[1:] == [
        "model: requires features>=0.2,<0.3 (bump model too)",
        "serving: requires features>=0.2,<0.3 (bump serving too)",
    ]
    for dependent in ("model", "serving"):
        text = (snapshot / "packages" / dependent / "pyproject.toml").read_text()
        assert '"features>=0.2,<0.3"' in text
    assert '"model>=0.1,<0.2"' in (snapshot / "packages/serving/pyproject.toml").read_text()
    lock = subprocess.run(["uv", "lock", "--check"], cwd=snapshot, capture_output=True, check=False)
    assert lock.returncode == 0, lock.stderr


def test_a_minor_bump_widens_a_dependent_s_extra_too(snapshot: Path) -> None:
    """serving's fast extra requires model[fast] with a range: a minor bump of model widens it
    beside the plain dependency, or the re-lock could not resolve serving[fast]."""
    fragment(snapshot, "model", "A faster kernel.")
    changes = release.bump("model", "minor", snapshot)
    assert changes[1:] == [
        "serving: requires model>=0.2,<0.3 (bump serving too)",
        "serving: requires model[fast]>=0.2,<0.3 (bump serving too)",
    ]
    text = (snapshot / "packages/serving/pyproject.toml").read_text()
    assert '"model>=0.2,<0.3"' in text
    assert 'fast = ["model[fast]>=0.2,<0.3"]' in text
    lock = subprocess.run(["uv", "lock", "--check"], cwd=snapshot, capture_output=True, check=False)
    assert lock.returncode == 0, lock.stderr


def test_patch_bump_within_range_leaves_dependents(snapshot: Path) -> None:
    fragment(snapshot, "model", "A fix.", "bugfix")
    assert release.bump("model", "patch", snapshot) == [
        "model: 0.1.0 -> 0.1.1, CHANGELOG.md assembled from its change fragments"
    ]
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], cwd=snapshot, capture_output=True, check=True
    )
    assert staged.stdout == b""  # the working tree only: what to commit is the user's call


# --- change fragments: checked before anything changes ----------------------------------------


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a workspace copy but .git's, with its bytes (a link: its target's path)."""
    return {
        p.relative_to(root).as_posix(): str(p.readlink()).encode()
        if p.is_symlink()
        else p.read_bytes()
        for p in root.rglob("*")
        if ".git" not in p.relative_to(root).parts and (p.is_symlink() or p.is_file())
    }


LINK_TARGET_TEXT = "CANARY-link-target-text-4c1d"
NOT_A_FRAGMENT = (
    "not a change fragment's name: <issue>.<type>.md or +<short-name>.<type>.md, <type> one of "
    "feature, bugfix, doc, removal, misc"
)
BAD_FRAGMENTS: dict[str, tuple[str, Callable[[Path, Path], None], str]] = {
    "link to /proc/self/environ": (
        "+environ.feature.md",
        lambda path, _: path.symlink_to("/proc/self/environ"),
        "a symlink, not a change fragment: fragments are regular files inside changes/",
    ),
    "link to a file outside": (
        "+outside.feature.md",
        lambda path, tmp: path.symlink_to(tmp / "outside.md"),
        "a symlink, not a change fragment: fragments are regular files inside changes/",
    ),
    "folder named like a fragment": (
        "+folder.feature.md",
        lambda path, _: path.mkdir(),
        "a folder, not a change fragment: fragments are regular files inside changes/",
    ),
    "untyped": ("+untyped.md", lambda path, _: path.write_text("A change."), NOT_A_FRAGMENT),
    "unknown type": ("+fix.fix.md", lambda path, _: path.write_text("A fix."), NOT_A_FRAGMENT),
    "misnamed": ("notes.txt", lambda path, _: path.write_text("Notes."), NOT_A_FRAGMENT),
    "too large": (
        "+large.feature.md",
        lambda path, _: path.write_text("x" * (64 * 1024 + 1)),
        "larger than 64 KiB",
    ),
    "not UTF-8": (
        "+latin.feature.md",
        lambda path, _: path.write_bytes(b"caf\xe9"),
        "not UTF-8 text",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FRAGMENTS))
def test_a_bad_fragment_stops_bump_before_any_change(
    case: str, snapshot: Path, tmp_path: Path
) -> None:
    name, make, problem = BAD_FRAGMENTS[case]
    (tmp_path / "outside.md").write_text(LINK_TARGET_TEXT)
    make(snapshot / "packages" / "model" / "changes" / name, tmp_path)
    before = tree(snapshot)
    with pytest.raises(release.ReleaseError) as error:
        release.bump("model", "patch", snapshot)
    assert str(error.value) == f"packages/model/changes/{name}: {problem}; nothing was changed"
    assert tree(snapshot) == before
    assert release.check_fragments(snapshot) == [f"packages/model/changes/{name}: {problem}"]
    changelog = (snapshot / "packages" / "model" / "CHANGELOG.md").read_text()
    assert LINK_TARGET_TEXT not in changelog
    assert "PATH=" not in changelog


def test_fragments_up_to_64_kib_of_utf8_with_any_issue_name_pass(snapshot: Path) -> None:
    changes = snapshot / "packages" / "features" / "changes"
    (changes / "+largest.feature.md").write_text("é" * (32 * 1024))  # 64 KiB exactly
    (changes / "123.bugfix.md").write_text("Issue 123 fixed.")
    (changes / "+features-0.2.misc.md").write_text("Requires features 0.2.")
    (changes / ".gitkeep").write_text("")
    assert release.check_fragments(snapshot) == []
    release.bump("features", "patch", snapshot)
    changelog = (snapshot / "packages" / "features" / "CHANGELOG.md").read_text()
    assert "Issue 123 fixed. (#123)" in changelog
    assert "- Requires features 0.2." in changelog
    assert sorted(p.name for p in changes.iterdir()) == [".gitkeep", "README.md"]


def test_a_folder_named_like_a_fragment_is_one_line_from_the_command(snapshot: Path) -> None:
    (snapshot / "packages" / "model" / "changes" / "+folder.feature.md").mkdir()
    result = subprocess.run(
        [sys.executable, "tools/release.py", "bump", "model", "patch"],
        cwd=snapshot, env=without_uv_credentials(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: packages/model/changes/+folder.feature.md: a folder, not a change fragment: "
        "fragments are regular files inside changes/; nothing was changed\n"
    )


def test_a_bump_that_fails_late_puts_every_file_back(
    snapshot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last step, the re-lock, fails (uv is told the lock must not change): the version,
    the changelog, the dependents' ranges and the consumed fragment are all put back."""
    fragment(snapshot, "features", "Integer categories.")
    before = tree(snapshot)
    monkeypatch.setenv("UV_LOCKED", "1")
    with pytest.raises(
        release.ReleaseError, match=r"(?s)^`uv lock ...` failed:.*needs to be updated"
    ):
        release.bump("features", "minor", snapshot)
    assert tree(snapshot) == before


def test_bump_assembles_the_changelog_from_fragments_and_needs_one(snapshot: Path) -> None:
    package = snapshot / "packages" / "serving"
    for pending in release.change_fragments("serving", snapshot):
        pending.unlink()
    with pytest.raises(release.ReleaseError, match=r"serving: no change fragment in packages/"):
        release.bump("serving", "patch", snapshot)
    assert release.version_of("serving", snapshot) == release.Version("0.1.0")  # untouched
    fragment(snapshot, "serving", "Rejects keep the input's cells.", "bugfix")
    fragment(snapshot, "serving", "A `--keep` option.", "feature")
    release.bump("serving", "patch", snapshot)
    changelog = (package / "CHANGELOG.md").read_text()
    section = changelog.split("## serving 0.1.1 (", 1)[1].split("## serving 0.1.0", 1)[0]
    assert "### Features\n\n- A `--keep` option." in section
    assert "### Bugfixes\n\n- Rejects keep the input's cells." in section
    assert release.change_fragments("serving", snapshot) == []  # consumed
    assert (package / "changes" / "README.md").is_file()
    assert release.check_changelogs(snapshot) == []


def test_a_version_without_its_changelog_section_is_refused(snapshot: Path) -> None:
    assert release.check_changelogs(snapshot) == []
    subprocess.run(
        ["uv", "version", "--package", "model", "0.1.5", "--frozen"], cwd=snapshot, check=True
    )
    (problem,) = release.check_changelogs(snapshot)
    assert problem.startswith("model: packages/model/CHANGELOG.md has no section for 0.1.5")


def tag_all(snapshot: Path) -> None:
    for name in release.ORDER:
        subprocess.run([*GIT, "tag", "-a", f"{name}-v0.1.0", "-m", name], cwd=snapshot, check=True)


def test_changed_since_tag_without_bump(snapshot: Path) -> None:
    """Its folder's files, committed or not, new or edited, are a member's inputs; another
    member's folder, the docs and the tools are not."""
    tag_all(snapshot)
    assert release.check_unbumped(snapshot) == []
    readme = snapshot / "packages/features/README.md"
    readme.write_text(readme.read_text() + "\nchanged\n")
    (snapshot / "packages/model/src/model/extra.py").write_text("x = 1\n")
    (snapshot / "docs/publishing.md").write_text("rewritten\n")
    (snapshot / "tools/release.py").write_text("# rewritten\n")
    assert release.check_unbumped(snapshot) == [
        "features: changed since features-v0.1.0 but kept version 0.1.0 "
        "(packages/features/README.md); bump it: `tools/release.py bump features patch` "
        "(or minor, major)",
        "model: changed since model-v0.1.0 but kept version 0.1.0 "
        "(packages/model/src/model/extra.py); bump it: `tools/release.py bump model patch` "
        "(or minor, major)",
    ]


def locked_version(lock: Path, name: str) -> str:
    found = re.search(rf'name = "{name}"\nversion = "([^"]+)"', lock.read_text())
    assert found, name
    return found.group(1)


def relock(lock: Path, name: str, version: str) -> None:
    """Set ``name``'s locked version in ``lock`` by hand (a lock change, without a resolver)."""
    entry = rf'name = "{name}"\nversion = "[^"]+"'
    lock.write_text(
        re.sub(entry, f'name = "{name}"\nversion = "{version}"', lock.read_text(), count=1)
    )


def test_a_locked_change_counts_for_the_members_whose_closure_it_is_in(snapshot: Path) -> None:
    """A lock entry that only model's closure reaches changes model alone; one that every
    member reaches changes each; a sibling's entry (a new version of features) changes none of
    its dependents."""
    tag_all(snapshot)
    lock = snapshot / "uv.lock"
    skops, numpy = locked_version(lock, "skops"), locked_version(lock, "numpy")
    relock(lock, "skops", "9.9.9")
    relock(lock, "features", "0.9.0")
    assert release.changes_since("model", "model-v0.1.0", snapshot) == [
        f"locked skops {skops} -> 9.9.9"
    ]
    assert release.changes_since("serving", "serving-v0.1.0", snapshot) == []
    relock(lock, "numpy", "0.0.1")
    for name in release.ORDER:
        changes = release.changes_since(name, f"{name}-v0.1.0", snapshot)
        assert any(c.startswith(f"locked numpy {numpy}") and "0.0.1" in c for c in changes)


# --- checks on real wheels: built once, failures made by editing copies ----------------------


@pytest.fixture(scope="session")
def real_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace really built by the release tool (default model trained and bundled)."""
    dist = tmp_path_factory.mktemp("real-dist")
    release.build(dist)
    return dist


def copy_of(dist: Path, target: Path) -> Path:
    return Path(shutil.copytree(dist, target))


def rewrite_wheel(wheel: Path, edit: Callable[[str, bytes], bytes | None]) -> None:
    """Rewrite ``wheel`` (a copy) member by member through ``edit``; ``None`` drops a member."""
    edited = wheel.with_name(wheel.name + ".edited")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(edited, "w") as target:
        for info in source.infolist():
            data = edit(info.filename, source.read(info))
            if data is not None:
                target.writestr(info, data)
    edited.replace(wheel)


def set_requirement(sibling: str, new: str) -> Callable[[str, bytes], bytes | None]:
    """An edit that replaces the METADATA's one unconditional ``Requires-Dist`` on ``sibling``
    (not an extra's, such as ``model[fast]; extra == 'fast'``) by ``new``."""

    def edit(name: str, data: bytes) -> bytes | None:
        if not name.endswith(".dist-info/METADATA"):
            return data
        text, count = re.subn(
            rf"^Requires-Dist: {sibling}(?![\w.\[-])[^;\n]*$",
            f"Requires-Dist: {new}",
            data.decode(),
            flags=re.M,
        )
        assert count == 1, text
        return text.encode()

    return edit


def test_sibling_ranges_in_built_metadata(real_dist: Path, tmp_path: Path) -> None:
    assert release.check_metadata(real_dist) == []

    dist = copy_of(real_dist, tmp_path / "dist")
    rewrite_wheel(release.wheel_of("model", dist), set_requirement("features", "features"))
    rewrite_wheel(release.wheel_of("serving", dist), set_requirement("model", "model>=99"))
    features = release.version_of("features")
    (dist / f"features-{features}.tar.gz").unlink()
    assert release.check_metadata(dist) == [
        f"features: no sdist features-{features}.tar.gz",
        "model: Requires-Dist features has no version range",
        f"serving: Requires-Dist model>=99 does not admit model {release.version_of('model')}; "
        "run `tools/release.py bump` or fix the range",
    ]


def test_each_release_has_its_sbom(real_dist: Path, tmp_path: Path) -> None:
    """A CycloneDX SBOM of each package's locked closure beside its wheel, for its version."""
    assert release.check_sboms(real_dist) == []
    serving = json.loads((real_dist / release.sbom_name("serving")).read_text())
    listed = {c["name"] for c in serving["components"]}
    assert {"model", "features", "fastapi", "uvicorn"} <= listed
    assert not listed & {"pytest", "ruff", "mypy", "towncrier"}  # no dev tools
    features = json.loads((real_dist / release.sbom_name("features")).read_text())
    assert not {c["name"] for c in features["components"]} & {"model", "fastapi", "skops"}

    dist = copy_of(real_dist, tmp_path / "dist")
    (dist / release.sbom_name("features")).unlink()
    stale = dist / release.sbom_name("model")
    stale.write_text(stale.read_text().replace('"version": "0.1.0"', '"version": "0.0.9"', 1))
    serving["components"] = [c for c in serving["components"] if c["name"] != "model"]
    (dist / release.sbom_name("serving")).write_text(json.dumps(serving))
    assert release.check_sboms(dist) == [
        f"features: no SBOM {release.sbom_name('features')} beside its wheel",
        f"model: {release.sbom_name('model')} is not a CycloneDX SBOM of model 0.1.0",
        f"serving: {release.sbom_name('serving')} does not list model 0.1.0",
    ]


def test_every_wheel_carries_the_license(real_dist: Path, tmp_path: Path) -> None:
    dist = copy_of(real_dist, tmp_path / "dist")
    rewrite_wheel(
        release.wheel_of("features", dist),
        lambda name, data: None if name.endswith("/licenses/LICENSE") else data,
    )
    rewrite_wheel(
        release.wheel_of("serving", dist),
        lambda name, data: (
            b"All rights reserved.\n" if name.endswith("/licenses/LICENSE") else data
        ),
    )
    features = release.version_of("features")
    assert release.check_metadata(dist) == [
        f"features: the wheel carries no license file "
        f"(features-{features}.dist-info/licenses/LICENSE)",
        "serving: the wheel's LICENSE differs from the repository's LICENSE",
    ]


def test_model_wheel_must_carry_its_own_artifact(real_dist: Path, tmp_path: Path) -> None:
    assert release.check_model_artifact(real_dist) == []
    version = release.version_of("model")

    bare = copy_of(real_dist, tmp_path / "bare")
    rewrite_wheel(
        release.wheel_of("model", bare),
        lambda name, data: None if name.startswith("model/default_artifact/") else data,
    )
    assert release.check_model_artifact(bare) == [
        "model: the wheel has no trained default artifact (model/default_artifact/)"
    ]

    def stale_manifest(name: str, data: bytes) -> bytes | None:
        if name == "model/default_artifact/pipeline.skops":
            return None
        if name == "model/default_artifact/manifest.json":
            manifest = json.loads(data)
            assert "pipeline.skops" in manifest["files"]
            manifest["versions"]["model"] = "0.0.9"
            return json.dumps(manifest).encode()
        return data

    stale = copy_of(real_dist, tmp_path / "stale")
    rewrite_wheel(release.wheel_of("model", stale), stale_manifest)
    assert release.check_model_artifact(stale) == [
        f"model: the bundled artifact was made by model 0.0.9, the wheel is {version}",
        "model: the bundled artifact lacks pipeline.skops",
    ]


def test_publish_needs_the_index_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("UV_PUBLISH_URL", raising=False)
    with pytest.raises(release.ReleaseError, match="UV_PUBLISH_URL is not set"):
        release.publish(tmp_path / "dist")


# --- reading the index: real HTTP servers that record what they were sent ---------------------

CANARIES = {
    "UV_PUBLISH_USERNAME": "canary-publish-user-3c1f",
    "UV_PUBLISH_PASSWORD": "canary-publish-password-9ab2",
    "UV_PUBLISH_TOKEN": "canary-publish-token-77d0",
    "UV_INDEX_PRIVATE_USERNAME": "canary-index-user-5e8a",
    "UV_INDEX_PRIVATE_PASSWORD": "canary-index-password-14bc",
}
PUBLISH_CANARIES = [v for k, v in CANARIES.items() if k.startswith("UV_PUBLISH")]
PAGE = (
    '<a href="/packages/features-0.1.0-py3-none-any.whl#sha256=00">'
    "features-0.1.0-py3-none-any.whl</a><br>\n"
    '<a href="/packages/features-0.1.0.tar.gz#sha256=00">features-0.1.0.tar.gz</a><br>\n'
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class RecordingServer(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 and a free port: answers each path from ``routes`` (404
    otherwise) and records every request's path, Authorization header and whole head."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.port = int(self.server_address[1])
        self.routes: dict[str, tuple[int, dict[str, str], str]] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.heads: list[str] = []

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    server: RecordingServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        self.server.heads.append(str(self.headers))
        status, headers, body = self.server.routes.get(self.path, (404, {}, "not found"))
        data = body.encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[Callable[[], RecordingServer]]:
    """Start recording servers on demand; every one is stopped at teardown."""
    started: list[tuple[RecordingServer, threading.Thread]] = []

    def start() -> RecordingServer:
        server = RecordingServer()
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every credential variable set to a value that must never be sent where it does not
    belong, nor printed; no index URL set yet."""
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("UV_INDEX_PRIVATE_URL", raising=False)
    monkeypatch.delenv("UV_INDEX", raising=False)
    monkeypatch.delenv("UV_PUBLISH_URL", raising=False)
    return CANARIES


def decoded(heads: list[str]) -> str:
    """The request heads with every Basic credential decoded, to search for secrets."""
    text = "\n".join(heads)
    tokens = re.findall(r"Basic ([A-Za-z0-9+/=]+)", text)
    return text + "\n" + "\n".join(base64.b64decode(t).decode() for t in tokens)


def test_the_index_url_may_come_as_uv_index_entries(
    canaries: dict[str, str],
    servers: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uv's own way of naming an index, ``UV_INDEX="name=url ..."``: the ``private`` entry."""
    index = servers()
    index.routes["/simple/features/"] = (200, {}, PAGE)
    with pytest.raises(release.ReleaseError, match=r"UV_INDEX=private=URL"):
        release.private_index_url()
    monkeypatch.setenv(
        "UV_INDEX", f"public=https://pypi.org/simple/ private={index.url('/simple/')}"
    )
    release.index_files("features")
    expected = basic(canaries["UV_INDEX_PRIVATE_USERNAME"], canaries["UV_INDEX_PRIVATE_PASSWORD"])
    assert index.seen == [("/simple/features/", expected)]
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", index.url("/elsewhere/"))  # it wins
    assert release.private_index_url() == index.url("/elsewhere/")


@pytest.mark.parametrize("index_credentials", [True, False], ids=["index-set", "index-unset"])
def test_index_read_never_sends_the_upload_credentials(
    index_credentials: bool,
    canaries: dict[str, str],
    servers: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = servers()
    index.routes["/simple/features/"] = (200, {}, PAGE)
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", index.url("/simple/"))
    if not index_credentials:
        monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME")
        monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")

    release.index_files("features")
    expected = (
        basic(canaries["UV_INDEX_PRIVATE_USERNAME"], canaries["UV_INDEX_PRIVATE_PASSWORD"])
        if index_credentials
        else None
    )
    assert index.seen == [("/simple/features/", expected)]
    sent = decoded(index.heads)
    for canary in PUBLISH_CANARIES:
        assert canary not in sent


REDIRECTS: dict[str, tuple[Callable[[RecordingServer, RecordingServer], str], bool]] = {
    "to another server as localhost": (lambda _, other: other.url("/moved/", "localhost"), False),
    "to the same server as localhost": (lambda index, _: index.url("/moved/", "localhost"), False),
    "to another port of 127.0.0.1": (lambda _, other: other.url("/moved/"), False),
    "same origin, absolute": (lambda index, _: index.url("/moved/"), True),
    "same origin, relative": (lambda _index, _other: "/moved/", True),
}


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("case", list(REDIRECTS))
def test_redirect_keeps_credentials_on_the_same_origin_only(
    case: str,
    status: int,
    canaries: dict[str, str],
    servers: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index, other = servers(), servers()
    location_of, kept = REDIRECTS[case]
    index.routes["/simple/features/"] = (status, {"Location": location_of(index, other)}, "")
    for server in (index, other):
        server.routes["/moved/"] = (200, {}, PAGE)
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", index.url("/simple/"))

    release.index_files("features")
    auth = basic(canaries["UV_INDEX_PRIVATE_USERNAME"], canaries["UV_INDEX_PRIVATE_PASSWORD"])
    assert index.seen[0] == ("/simple/features/", auth)
    moved = [a for s in (index, other) for path, a in s.seen if path == "/moved/"]
    assert moved == [auth if kept else None]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every name lookup or connection attempt is recorded and fails."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        msg = "network used"
        raise OSError(msg)

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize(
    ("url", "from_environment"),
    [
        ("http://index.example.invalid/simple/", True),
        ("http://someone:url-secret-6f21@index.example.invalid/simple/", False),
        ("http://127.0.0.1.example.invalid/simple/", True),  # a name, not a loopback address
        ("http://127.attacker.invalid:8080/simple/", True),
    ],
)
def test_credentials_never_go_over_plain_http_to_another_host(
    url: str,
    from_environment: bool,
    canaries: dict[str, str],
    no_network: list[object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", url)
    if not from_environment:
        monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME")
        monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")
    with pytest.raises(release.ReleaseError, match="over plain http") as error:
        release.index_files("features")
    assert no_network == []
    for secret in [*canaries.values(), "someone", "url-secret-6f21"]:
        assert secret not in str(error.value)

    # without credentials there is nothing to protect: plain http elsewhere is allowed
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", "http://index.example.invalid/simple/")
    monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME", raising=False)
    monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD", raising=False)
    request = release.index_request("features")
    assert request.full_url == "http://index.example.invalid/simple/features/"
    assert not request.has_header("Authorization")
    assert request.unredirected_hdrs == {}


URL_USER, URL_PASSWORD = "url-user-d4e9", "url pass@word:7a0c"  # quoted in the URL
URL_USERINFO = f"{URL_USER}:{urllib.parse.quote(URL_PASSWORD, safe='')}"


def test_credentials_in_the_url_are_used_and_never_shown(
    canaries: dict[str, str],
    servers: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME")
    monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")
    index = servers()
    index.routes["/s/features/"] = (200, {}, PAGE)
    index.routes["/s/model/"] = (401, {"WWW-Authenticate": 'Basic realm="pypi"'}, "no")
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", f"http://{URL_USERINFO}@127.0.0.1:{index.port}/s/")

    release.index_files("features")
    assert index.seen == [("/s/features/", basic(URL_USER, URL_PASSWORD))]

    secrets = [URL_USER, URL_PASSWORD, URL_USERINFO, urllib.parse.quote(URL_PASSWORD, safe="")]
    with pytest.raises(release.ReleaseError, match="answered HTTP 401 for model") as refused:
        release.index_files("model")
    closed = f"http://{URL_USERINFO}@127.0.0.1:{free_port()}/s/"
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", closed)
    with pytest.raises(release.ReleaseError, match="cannot read the index") as unreachable:
        release.index_files("model")
    for error in (refused.value, unreachable.value):
        for secret in [*secrets, *canaries.values()]:
            assert secret not in str(error)


def test_publish_reads_the_index_before_building_and_prints_no_secret(
    servers: Callable[[], RecordingServer], snapshot: Path, tmp_path: Path
) -> None:
    index = servers()
    index.routes["/simple/features/"] = (200, {}, PAGE)  # model's page: 404, serving: 403
    index.routes["/simple/serving/"] = (403, {}, f"forbidden {URL_PASSWORD}")
    dist = tmp_path / "dist"
    env = without_uv_credentials(
        **CANARIES,
        UV_INDEX_PRIVATE_URL=f"http://{URL_USERINFO}@127.0.0.1:{index.port}/simple/",
        UV_PUBLISH_URL=f"https://{URL_USERINFO}@upload.example.invalid/legacy/",
    )
    env.pop("UV_INDEX_PRIVATE_USERNAME")
    env.pop("UV_INDEX_PRIVATE_PASSWORD")
    result = subprocess.run(
        [sys.executable, "tools/release.py", "publish", "--no-tag", "--dist", str(dist)],
        cwd=snapshot, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: the index answered HTTP 403 for serving; "
        "check UV_INDEX_PRIVATE_URL and UV_INDEX_PRIVATE_USERNAME/_PASSWORD\n"
    )
    assert index.seen == [(f"/simple/{n}/", basic(URL_USER, URL_PASSWORD)) for n in release.ORDER]
    assert sorted(p.name for p in dist.iterdir()) == [release.DIST_MARKER]  # nothing built


@pytest.mark.parametrize(
    "index_url",
    [
        f"http://{URL_USERINFO}@127.0.0.1:8080/simple/",
        f"http://{URL_USERINFO}@[::1/simple/",  # not even parseable: still redacted, no crash
    ],
)
def test_redact_removes_every_credential(
    index_url: str, canaries: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", index_url)
    monkeypatch.setenv("UV_PUBLISH_URL", "https://up-user-1b2c:up%2Fpass-8d3e@upload.invalid/")
    secrets = [
        *canaries.values(),
        URL_USER,
        URL_PASSWORD,
        urllib.parse.quote(URL_PASSWORD, safe=""),
        "up-user-1b2c",
        "up/pass-8d3e",
        "up%2Fpass-8d3e",
    ]
    text = release.redact(" | ".join([index_url, *secrets]))
    for secret in secrets:
        assert secret not in text
    assert "***" in text


# --- the command line: no traceback, no secret, whatever goes wrong ---------------------------


def without_uv_credentials(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_PUBLISH", "UV_INDEX"))
        and k not in {"UV_PROJECT_ENVIRONMENT", "VIRTUAL_ENV"}
    }
    return {**env, **extra}


@pytest.mark.parametrize(
    "index_url",
    [
        "http://user-9d1e:CANARY-url-password-0f5b@127.0.0.1:notaport/simple/",
        "http://user-9d1e:CANARY-url-password-0f5b@[::1/simple/",
    ],
    ids=["invalid-port", "invalid-host"],
)
def test_publish_with_a_bad_index_url_prints_one_line_and_no_secret(
    index_url: str, snapshot: Path, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    env = without_uv_credentials(
        **CANARIES,
        UV_INDEX_PRIVATE_URL=index_url,
        UV_PUBLISH_URL="https://upload-user-2a7c:CANARY-upload-url-password-e3b9@127.0.0.1:9/",
    )
    result = subprocess.run(
        [sys.executable, "tools/release.py", "publish", "--no-tag", "--dist", str(dist)],
        cwd=snapshot,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, output
    assert "Traceback" not in output
    for canary in [
        *CANARIES.values(),
        "CANARY",
        "user-9d1e",
        "upload-user-2a7c",
    ]:
        assert canary not in output
    assert sorted(p.name for p in dist.iterdir()) == [release.DIST_MARKER]  # nothing built


# --- --dist: emptied only when the tool made it -----------------------------------------------


def test_fresh_dist_creates_a_marked_folder(tmp_path: Path) -> None:
    dist = tmp_path / "new" / "dist"
    assert release.fresh_dist(dist) == dist
    assert sorted(p.name for p in dist.iterdir()) == [release.DIST_MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    release.fresh_dist(empty)
    assert sorted(p.name for p in empty.iterdir()) == [release.DIST_MARKER]


def test_fresh_dist_removes_only_what_it_built(tmp_path: Path) -> None:
    """Files the tool built go on its next run; a file the user put beside them, and the
    folder itself (made by the user, with its mode), stay."""
    dist = tmp_path / "dist"
    dist.mkdir(mode=0o700)
    dist.chmod(0o700)
    release.fresh_dist(dist)
    (dist / "features-0.1.0-py3-none-any.whl").write_bytes(b"old build")
    release._record_built(dist, {"features-0.1.0-py3-none-any.whl"})
    (dist / "notes.txt").write_text("mine")
    assert release.fresh_dist(dist) == dist
    assert sorted(p.name for p in dist.iterdir()) == [release.DIST_MARKER, "notes.txt"]
    assert stat.S_IMODE(dist.stat().st_mode) == 0o700
    release._record_built(dist, {"../escape", "sub/x"})  # only plain names are ever removed
    assert release._built(dist) == []


def test_fresh_dist_refuses_what_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(release.ReleaseError, match="holds files this tool did not make"):
        release.fresh_dist(mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert not (mine / release.DIST_MARKER).exists()

    link = tmp_path / "link"
    link.symlink_to(mine)
    with pytest.raises(release.ReleaseError, match="is not a folder"):
        release.fresh_dist(link)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    with pytest.raises(release.ReleaseError, match="is not a folder"):
        release.fresh_dist(a_file)
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert a_file.read_text() == "keep"


@pytest.mark.parametrize("command", ["check", "publish"])
def test_main_refuses_a_dist_holding_user_files(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert release.main([command, "--dist", str(mine)]) == 1
    assert "refusing to use it" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_check_with_dist_dot_deletes_nothing(snapshot: Path) -> None:
    before = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*"))
    result = subprocess.run(
        [sys.executable, "tools/release.py", "check", "--dist", "."],
        cwd=snapshot,
        env=without_uv_credentials(PYTHONDONTWRITEBYTECODE="1"),  # no tools/__pycache__ either
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: --dist .: the folder holds files this tool did not")
    assert sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*")) == before
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=snapshot, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""


def test_loopback_index_is_never_read_through_a_proxy(
    canaries: dict[str, str],
    servers: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain http is allowed to this machine only; a proxy would carry the credentials off it."""
    index, proxy = servers(), servers()
    index.routes["/simple/features/"] = (200, {}, PAGE)
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", index.url("/simple/"))
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy.url("/"))
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    release.index_files("features")
    assert proxy.seen == []
    assert [path for path, _ in index.seen] == ["/simple/features/"]


def test_a_short_credential_is_redacted_only_where_it_stands_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UV_INDEX_PRIVATE_USERNAME", "u")
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", "p4ss-w0rd")
    text = release.redact("features: user u with p4ss-w0rd could not upload")
    assert text == "features: user *** with *** could not upload"


def test_the_check_url_carries_the_read_credentials_only(
    canaries: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv sends no credentials to ``--check-url`` but those in it, and uploads blind when the
    index answers 401: the read ones go in, quoted; the upload ones never."""
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", "https://index.example.invalid/simple/")
    url = urllib.parse.urlsplit(release.check_url())
    assert (url.hostname, url.path) == ("index.example.invalid", "/simple/")
    assert urllib.parse.unquote(url.username or "") == canaries["UV_INDEX_PRIVATE_USERNAME"]
    assert urllib.parse.unquote(url.password or "") == canaries["UV_INDEX_PRIVATE_PASSWORD"]
    for secret in PUBLISH_CANARIES:
        assert secret not in release.check_url()
    monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME")
    monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")
    assert release.check_url() == "https://index.example.invalid/simple/"


# --- publishing: only to where credentials are safe, only committed work ----------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://pypi.example.invalid/legacy/",
        "http://someone:url-secret-6f21@10.1.2.3:8080/",
        "HTTP://127.0.0.1.example.invalid/",  # a name, not a loopback address
    ],
)
def test_plain_http_uploads_to_another_machine_are_refused_before_building(
    url: str,
    canaries: dict[str, str],
    no_network: list[object],
    monkeypatch: pytest.MonkeyPatch,
    snapshot: Path,
    tmp_path: Path,
) -> None:
    """The upload carries its credentials: plain http only to this machine."""
    monkeypatch.setenv("UV_PUBLISH_URL", url)
    monkeypatch.setenv("UV_INDEX_PRIVATE_URL", "https://index.example.invalid/simple/")
    with pytest.raises(release.ReleaseError) as error:
        release.publish(tmp_path / "dist", snapshot)
    host = urllib.parse.urlsplit(url).hostname
    assert str(error.value) == (
        f"refusing to send the upload credentials over plain http to {host}; use an https "
        "UV_PUBLISH_URL (plain http is for this machine only)"
    )
    assert no_network == []
    assert not (tmp_path / "dist").exists()
    for secret in [*canaries.values(), "someone", "url-secret-6f21"]:
        assert secret not in str(error.value)
    for allowed in ("http://127.0.0.1:8080/", "http://[::1]/", "http://localhost/", "https://x/"):
        monkeypatch.setenv("UV_PUBLISH_URL", allowed)
        assert release.publish_url() == allowed


QUERY_SECRET = "query-secret-51ce"


def test_index_urls_with_a_query_string_and_userinfo_work_and_are_shown_masked(
    canaries: dict[str, str],
    servers: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uv's ``UV_INDEX=private=URL`` with credentials and a token in the URL: the page is read
    at the URL's path with its query, uv's check URL keeps both, and what is shown of the URL,
    or of anything carrying it, has ``***`` for them."""
    monkeypatch.delenv("UV_INDEX_PRIVATE_USERNAME")
    monkeypatch.delenv("UV_INDEX_PRIVATE_PASSWORD")
    index = servers()
    index.routes[f"/simple/features/?key={QUERY_SECRET}"] = (200, {}, PAGE)
    url = f"http://{URL_USERINFO}@127.0.0.1:{index.port}/simple/?key={QUERY_SECRET}"
    monkeypatch.setenv("UV_INDEX", f"private={url}")

    assert release.index_files("features") == {
        "features-0.1.0-py3-none-any.whl",
        "features-0.1.0.tar.gz",
    }
    assert index.seen == [(f"/simple/features/?key={QUERY_SECRET}", basic(URL_USER, URL_PASSWORD))]
    check = urllib.parse.urlsplit(release.check_url())
    assert (check.path, check.query) == ("/simple/", f"key={QUERY_SECRET}")
    assert urllib.parse.unquote(check.password or "") == URL_PASSWORD
    assert release.masked(url) == f"http://***@127.0.0.1:{index.port}/simple/?***"
    shown = release.redact(f"failed: {url} | {release.check_url()} | {QUERY_SECRET}")
    for secret in (URL_USER, URL_PASSWORD, urllib.parse.quote(URL_PASSWORD), QUERY_SECRET):
        assert secret not in shown


def test_a_tag_goes_only_on_a_commit_that_holds_its_version(
    snapshot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Release Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "release@test.invalid")
    head = release.run("git", "rev-parse", "HEAD", cwd=snapshot).strip()
    ahead = release.Release("model", release.Version("0.1.1"), None)
    with pytest.raises(release.ReleaseError) as error:
        release.tag_release(ahead, head, snapshot)
    assert str(error.value) == f"model: commit {head} holds version 0.1.0, not 0.1.1; not tagged"
    assert release.tag_commit("model-v0.1.1", snapshot) is None
    release.tag_release(release.Release("model", release.Version("0.1.0"), None), head, snapshot)
    assert release.tag_commit("model-v0.1.0", snapshot) == head


def test_uncommitted_work_is_found_where_a_release_reads_it(snapshot: Path) -> None:
    assert release.uncommitted(snapshot) == []
    for path, text in {
        "packages/features/README.md": "staged\n",
        "tools/release.py": "# edited\n",
        "packages/model/src/model/new.py": "x = 1\n",
        "configs/new.toml": "x = 1\n",
        "dist/features-0.1.0.tar.gz": "ignored\n",
        "packages/model/src/model/default_artifact/manifest.json": "ignored\n",
        "docs/new.md": "not released\n",
        "tests/test_new.py": "not released\n",
    }.items():
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / path).write_text(text)
    subprocess.run([*GIT, "add", "packages/features/README.md"], cwd=snapshot, check=True)
    subprocess.run(
        [*GIT, "mv", "packages/serving/README.md", "packages/serving/READ.md"],
        cwd=snapshot,
        check=True,
    )
    (snapshot / "uv.lock").unlink()
    assert release.uncommitted(snapshot) == [
        "configs/new.toml",
        "packages/features/README.md",
        "packages/model/src/model/new.py",
        "packages/serving/READ.md",
        "tools/release.py",
        "uv.lock",
    ]


def test_the_release_check_fails_on_what_is_not_a_fragment(snapshot: Path, tmp_path: Path) -> None:
    changes = snapshot / "packages" / "serving" / "changes"
    (changes / "+untyped.md").write_text("A change.")
    (changes / "notes.txt").write_text("Notes.")
    result = subprocess.run(
        [sys.executable, "tools/release.py", "check", "--dist", str(tmp_path / "dist")],
        cwd=snapshot, env=without_uv_credentials(), capture_output=True, text=True, check=False,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 1
    problems = result.stderr.splitlines()
    assert problems[0] == "release check failed:"
    assert f"  packages/serving/changes/+untyped.md: {NOT_A_FRAGMENT}" in problems
    assert f"  packages/serving/changes/notes.txt: {NOT_A_FRAGMENT}" in problems
