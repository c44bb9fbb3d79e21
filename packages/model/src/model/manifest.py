"""The artifact's format: its files, ``manifest.json`` and the model version.

An artifact is a directory holding the skops pipeline (:data:`PIPELINE_FILE`), its compiled
form (:data:`INFERENCE_FILE`, see :mod:`model.compiled`), a model card and the manifest,
which records how the model was made and the sha256 of every other file. Reading the
manifest is plain JSON and pydantic: it runs nothing. Writing, verifying and loading an
artifact is :mod:`model.store`'s job.

The model version identifies what predicts, and what the manifest claims about it
(:func:`model_version`): it is derived from the compiled form, the class order, the feature
spec, the training config, the data fingerprint and the metrics, not from the skops file's
bytes (which change with Python object ids from one save to the next), so the same config,
data and lock give the same version. Only when the compiled form does not predict alone does
it also cover ``pipeline.skops``. What it does not cover is checked against what it covers
(:func:`check_claims`): the name is the config's, the task the spec's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from model.exceptions import ArtifactError

FORMAT_VERSION = 3
"""Version of the artifact layout and manifest schema.

Bump it on any incompatible change to either; then either keep reading the previous version
(and keep a test that loads one) or refuse it with a message that says to retrain. Version 3:
the model version covers the metrics too (version 2, never released, is refused: retrain).
"""

PIPELINE_FILE = "pipeline.skops"
INFERENCE_FILE = "inference.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "MODEL_CARD.md"
COVERED = (INFERENCE_FILE, "classes", "feature_spec", "config", "data", "metrics")
"""What the model version covers (see :func:`model_version`), and ``pipeline.skops`` too when
the compiled form does not predict alone."""
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")
"""Files an artifact never holds (pickles run code when loaded); loading refuses them."""


class Manifest(BaseModel):
    """What an artifact is and how it was made (``manifest.json``); every field of the type it
    is written with (strict: no text where a number belongs), and ``versions`` names at least
    the ``model`` package's."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=(), strict=True)

    format_version: int
    model_name: str
    model_version: str
    task: str
    created_at: datetime = Field(strict=False)  # written as ISO 8601 text
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

    @field_validator("versions")
    @classmethod
    def _names_the_model(cls, versions: dict[str, str]) -> dict[str, str]:
        """The model version starts with ``versions.model``."""
        if "model" not in versions:
            msg = "names no model version (versions.model)"
            raise ValueError(msg)
        return versions


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
    covered), its ``data`` fingerprint without the file name, and for ``metrics`` an object
    of its ``metrics`` and ``cv_metrics``. The library versions are not covered: a lock that
    fits another model changes the compiled form."""
    files = manifest["files"]
    parts = {
        INFERENCE_FILE: files.get(INFERENCE_FILE),
        PIPELINE_FILE: files.get(PIPELINE_FILE),
        "classes": manifest.get("classes"),
        "feature_spec": manifest["feature_spec"],
        "config": {k: v for k, v in manifest["config"].items() if k not in {"spec", "data"}},
        "data": {k: v for k, v in manifest["data"].items() if k != "file"},
        "metrics": {k: manifest.get(k, {}) for k in ("metrics", "cv_metrics")},
    }
    identity = {name: parts[name] for name in covers}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{manifest['versions']['model']}+{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def check_claims(file: Path, manifest: Manifest, task: str) -> None:
    """Refuse, with :class:`ArtifactError`, a manifest whose name or task (which the model
    version does not cover) is not what the content it covers says: the training config's
    ``name`` (when it has a config) and the feature spec's ``task``."""
    named = manifest.config.get("name", manifest.model_name)
    if manifest.model_name != named or manifest.task != task:
        msg = (
            f"{file}: model_name {manifest.model_name!r} and task {manifest.task!r} are not the "
            f"config's {named!r} and the feature spec's {task!r}; the manifest was changed"
        )
        raise ArtifactError(msg)


def parse_manifest(data: bytes, file: Path) -> Manifest:
    """Parse and check the bytes of ``manifest.json`` (plain JSON: parsing it runs nothing);
    ``file`` names it in messages."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as error:  # JSON, Unicode, or nesting too deep
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        msg = f"{file}: not valid JSON ({problem}); the artifact is damaged"
        raise ArtifactError(msg) from None
    if not isinstance(raw, dict):
        msg = f"{file}: expected a JSON object"
        raise ArtifactError(msg)
    if type(raw.get("format_version")) is not int or raw["format_version"] != FORMAT_VERSION:
        msg = (
            f"{file.parent}: artifact format version {raw.get('format_version')!r} is not "
            f"supported (this model package reads version {FORMAT_VERSION}); retrain the model"
        )
        raise ArtifactError(msg)
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        msg = f"{file}: malformed manifest: {error.error_count()} problem(s), first: "
        msg += f"{'.'.join(map(str, first['loc'])) or '(top level)'}: {first['msg']}"
        raise ArtifactError(msg) from None
