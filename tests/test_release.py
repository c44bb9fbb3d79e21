"""The release tool's checks, each shown failing on a workspace that really has the problem."""

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import GIT, ROOT

spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
assert spec is not None
assert spec.loader is not None
release = importlib.util.module_from_spec(spec)
sys.modules["release"] = release
spec.loader.exec_module(release)


def test_compatible_range() -> None:
    assert release.compatible_range(release.Version("0.2.0")) == ">=0.2,<0.3"
    assert release.compatible_range(release.Version("1.4.2")) == ">=1.4,<2"


def test_bump_updates_dependents_and_lock(snapshot: Path) -> None:
    changes = release.bump("features", "minor", snapshot)
    assert changes[0] == "features: 0.1.0 -> 0.2.0"
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


def test_patch_bump_within_range_leaves_dependents(snapshot: Path) -> None:
    assert release.bump("model", "patch", snapshot) == ["model: 0.1.0 -> 0.1.1"]


def test_changed_since_tag_without_bump(snapshot: Path) -> None:
    subprocess.run([*GIT, "tag", "-a", "features-v0.1.0", "-m", "x"], cwd=snapshot, check=True)
    assert release.check_versions_bumped(snapshot) == []
    readme = snapshot / "packages/features/README.md"
    readme.write_text(readme.read_text() + "\nchanged\n")
    (problem,) = release.check_versions_bumped(snapshot)
    assert problem.startswith("features: files changed since features-v0.1.0 but the version")


def fake_wheel(
    dist: Path, name: str, version: str, requires: list[str], files: dict[str, str] | None = None
) -> None:
    dist.mkdir(exist_ok=True)
    with zipfile.ZipFile(dist / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        lines = [f"Name: {name}", f"Version: {version}", *[f"Requires-Dist: {r}" for r in requires]]
        wheel.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")
        for path, text in (files or {}).items():
            wheel.writestr(path, text)
    (dist / f"{name}-{version}.tar.gz").write_bytes(b"")


def test_sibling_ranges_in_built_metadata(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    fake_wheel(dist, "features", "0.1.0", ["numpy>=1.26"])
    fake_wheel(dist, "model", "0.1.0", ["features"])
    fake_wheel(dist, "serving", "0.1.0", ["model>=0.2,<0.3"])
    assert release.check_metadata(dist) == [
        "model: Requires-Dist features has no version range",
        "serving: Requires-Dist model<0.3,>=0.2 does not admit model 0.1.0; "
        "run `tools/release.py bump` or fix the range",
    ]


def test_model_wheel_must_carry_its_own_artifact(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    fake_wheel(bare, "model", "0.1.0", [])
    assert release.check_model_artifact(bare) == [
        "model: the wheel has no trained default artifact (model/default_artifact/)"
    ]
    stale = tmp_path / "stale"
    manifest = {"versions": {"model": "0.0.9"}, "files": {"pipeline.skops": "0" * 64}}
    fake_wheel(
        stale, "model", "0.1.0", [], {"model/default_artifact/manifest.json": json.dumps(manifest)}
    )
    assert release.check_model_artifact(stale) == [
        "model: the bundled artifact was made by model 0.0.9, the wheel is 0.1.0",
        "model: the bundled artifact lacks pipeline.skops",
    ]


def test_publish_needs_the_index_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("UV_PUBLISH_URL", raising=False)
    with pytest.raises(release.ReleaseError, match="UV_PUBLISH_URL is not set"):
        release.publish(tmp_path / "dist")
