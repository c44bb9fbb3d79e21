"""The default artifact bundled inside the installed ``model`` package (``model train
--bundle`` or ``model bundle`` puts one there), loaded like any other: verified and audited."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from model.exceptions import ArtifactError
from model.manifest import MANIFEST_FILE
from model.predictor import Artifact
from model.store import load_artifact

BUNDLE = "default_artifact"


def default_artifact_dir() -> Path:
    """Where the bundled default artifact lives inside the installed ``model`` package."""
    return Path(str(resources.files("model"))) / BUNDLE


def source_tree_bundle_dir(package_dir: Path) -> Path:
    """Where it lives in the package's sources at ``package_dir``: what a build ships."""
    return package_dir / "src" / "model" / BUNDLE


def load_default(public_key: str | Path | None = None) -> Artifact:
    """Load the artifact bundled in the installed ``model`` (see ``model train --bundle``);
    with ``public_key``, its signature must verify first."""
    path = default_artifact_dir()
    if not (path / MANIFEST_FILE).is_file():
        msg = (
            "no default artifact is bundled in this installation of model; "
            "train one with `uv run model train --bundle`, or pass an artifact path"
        )
        raise ArtifactError(msg)
    return load_artifact(path, public_key)


def load_artifact_or_default(
    path: str | Path | None, public_key: str | Path | None = None
) -> Artifact:
    """``load_artifact(path)``, or the bundled default artifact when ``path`` is None; with
    ``public_key``, its signature must verify first."""
    return load_default(public_key) if path is None else load_artifact(path, public_key)
