"""The artifact's format: its files, ``manifest.json`` and the model version.

An artifact is a directory holding the skops pipeline (:data:`PIPELINE_FILE`), its compiled
form (:data:`INFERENCE_FILE`, see :mod:`model.compiled`), a model card and the manifest,
which records how the model was made and the sha256 of every other file. Reading the
manifest is plain JSON and pydantic: it runs nothing. Writing, verifying and loading an
artifact is :mod:`model.store`'s job.

The model version identifies what predicts (:func:`model_version`): it is derived from the
compiled form, the class order, the feature spec, the training config and the data
fingerprint, not from the skops file's bytes (which change with Python object
ids from one save to the next), so the same config, data and lock give the same version.
Only when the compiled form does not predict alone does it also cover ``pipeline.skops``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from model.exceptions import ArtifactError

FORMAT_VERSION = 2
"""Version of the artifact layout and manifest schema.

Bump it on any incompatible change to either; then either keep reading the previous version
(and keep a test that loads one) or refuse it with a message that says to retrain.
"""

PIPELINE_FILE = "pipeline.skops"
INFERENCE_FILE = "inference.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "MODEL_CARD.md"
COVERED = (INFERENCE_FILE, "classes", "feature_spec", "config", "data")
"""What the model version covers (see :func:`model_version`), and ``pipeline.skops`` too when
the compiled form does not predict alone."""
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")
"""Files an artifact never holds (pickles run code when loaded); loading refuses them."""


class Manifest(BaseModel):
    """What an artifact is and how it was made (``manifest.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format_version: int
    model_name: str
    model_version: str
    task: str
    created_at: datetime
    git_commit: str | None = None
    versions: dict[str, str]
    config: dict[str, Any] = {}
    feature_spec: dict[str, Any]
    metrics: dict[str, float] = {}
    cv_metrics: dict[str, dict[str, float]] = {}
    data: dict[str, Any] = {}
    classes: list[str] | None = None
    files: dict[str, str]
    model_version_covers: list[str]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def covered(numpy_only: bool) -> list[str]:
    """What the version of an artifact covers: :data:`COVERED`, plus ``pipeline.skops`` when
    its compiled form does not predict alone (``numpy_only`` false)."""
    return [*COVERED, *([] if numpy_only else [PIPELINE_FILE])]


def model_version(manifest: Mapping[str, Any], covers: Sequence[str]) -> str:
    """``<model package version>+<12 hex>``: the hex starts the sha256 of the canonical JSON
    (sorted keys, no spaces) of an object holding, for each name in ``covers``: the sha256 of
    that file (``inference.json``, ``pipeline.skops``), the manifest's ``classes`` and
    ``feature_spec``, its ``config`` without the ``spec`` and ``data`` paths (their content is
    covered), and its ``data`` fingerprint without the file name. The library versions are
    not covered: a lock that fits another model changes the compiled form."""
    files = manifest["files"]
    parts = {
        INFERENCE_FILE: files.get(INFERENCE_FILE),
        PIPELINE_FILE: files.get(PIPELINE_FILE),
        "classes": manifest.get("classes"),
        "feature_spec": manifest["feature_spec"],
        "config": {k: v for k, v in manifest["config"].items() if k not in {"spec", "data"}},
        "data": {k: v for k, v in manifest["data"].items() if k != "file"},
    }
    identity = {name: parts[name] for name in covers}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{manifest['versions']['model']}+{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def read_manifest(path: Path) -> Manifest:
    """Parse and check ``manifest.json`` (plain JSON: reading it runs nothing)."""
    manifest_path = Path(path) / MANIFEST_FILE
    if not manifest_path.is_file():
        msg = f"{path}: not a model artifact (no {MANIFEST_FILE})"
        raise ArtifactError(msg)
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # JSON, Unicode, or nesting too deep
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        msg = f"{manifest_path}: not valid JSON ({problem}); the artifact is damaged"
        raise ArtifactError(msg) from None
    except OSError as error:
        msg = f"{manifest_path}: cannot read: {error.strerror}"
        raise ArtifactError(msg) from None
    if not isinstance(raw, dict):
        msg = f"{manifest_path}: expected a JSON object"
        raise ArtifactError(msg)
    if type(raw.get("format_version")) is not int or raw["format_version"] != FORMAT_VERSION:
        msg = (
            f"{path}: artifact format version {raw.get('format_version')!r} is not supported "
            f"(this model package reads version {FORMAT_VERSION}); retrain the model"
        )
        raise ArtifactError(msg)
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        msg = f"{manifest_path}: malformed manifest: {error.error_count()} problem(s), first: "
        msg += f"{'.'.join(map(str, error.errors()[0]['loc']))}: {error.errors()[0]['msg']}"
        raise ArtifactError(msg) from None
