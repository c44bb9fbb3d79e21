"""The model artifact: a directory with the skops pipeline, a manifest, a model card and
``inference.json``, the pipeline compiled to NumPy (:mod:`model.compiled`).

Loading verifies before it trusts: the manifest's format version, every file's sha256 and the
features version (train/serve skew). The skops pipeline is loaded when first needed (at once
unless the whole model compiled), after its types are checked against a list fixed in this
module, before a single object is constructed. Nothing is ever unpickled. The compiled form is
plain JSON numbers and names; for a linear model, predicting then needs neither scikit-learn
nor SciPy.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from packaging.version import Version
from pydantic import BaseModel, ConfigDict, ValidationError

import features
from features import Columns, FeatureSpec, frame_columns
from model.compiled import CompiledPipeline
from model.exceptions import ArtifactError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from features import ValidationReport

FORMAT_VERSION = 1
"""Version of the artifact layout and manifest schema.

Bump it on any incompatible change to either; then either keep reading the previous version
(and keep a test that loads one) or refuse it with a message that says to retrain.
"""

PIPELINE_FILE = "pipeline.skops"
INFERENCE_FILE = "inference.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "MODEL_CARD.md"
PREDICTING_FILES = (PIPELINE_FILE, INFERENCE_FILE)
"""The files whose content decides predictions: the model version covers these."""
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")

TRUSTED_TYPES: tuple[str, ...] = (
    "features.transformers.QuantileClipper",
    "features.transformers.RatioFeatures",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
"""Types beyond skops' own safe defaults that a pipeline may hold. Reviewed code, never data:
extend it only for a type whose construction cannot run arbitrary code."""


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


@dataclass(frozen=True)
class Prediction:
    """Predictions for the valid rows, indexed like the input, and the report of the others."""

    predictions: pd.Series
    probabilities: pd.DataFrame | None
    report: ValidationReport


@dataclass(frozen=True)
class Artifact:
    """A verified, loaded model."""

    path: Path
    manifest: Manifest
    spec: FeatureSpec
    compiled: CompiledPipeline | None

    @property
    def name(self) -> str:
        """The model's name (the training config's ``name``)."""
        return self.manifest.model_name

    @property
    def version(self) -> str:
        """``<model package version>+<12 hex>``, the hex starting a sha256 over the (name,
        sha256) pairs of the files that predict, ``pipeline.skops`` and ``inference.json``
        (see :func:`model_version`): it changes with either, never with the model card."""
        return self.manifest.model_version

    @cached_property
    def pipeline(self) -> Pipeline:
        """The scikit-learn pipeline, audited and loaded from skops on first use."""
        return _load_pipeline(self.path / PIPELINE_FILE)

    def predict_valid(self, columns: Columns) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (and class probabilities) for rows that already passed the spec.

        ``columns`` are validated columns by name (see :data:`features.compiled.Columns`).
        The compiled preprocessing and estimator are used where the artifact has them, else
        the scikit-learn pipeline's.
        """
        matrix = self._matrix(columns)
        estimator: Any = (
            self.pipeline[-1]
            if self.compiled is None or self.compiled.estimator is None
            else self.compiled.estimator
        )
        if self.spec.task != "classification":
            return np.asarray(estimator.predict(matrix)), None
        # One pass through the model: the predicted class is the most probable one.
        proba = np.asarray(estimator.predict_proba(matrix))
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)], proba

    def _matrix(self, columns: Columns) -> np.ndarray:
        """The model matrix: what the pipeline's preprocessing hands its estimator."""
        if self.compiled is not None:
            return self.compiled.preprocessor.transform(columns)
        import pandas as pd  # noqa: PLC0415 - only the scikit-learn path needs a frame

        frame = pd.DataFrame({name: columns[name] for name in self.spec.feature_names})
        return np.asarray(self.pipeline[:-1].transform(frame))

    @property
    def classes(self) -> list[str]:
        """Class names in probability-column order (empty for regression)."""
        return list(self.manifest.classes or [])

    def predict(self, frame: pd.DataFrame) -> Prediction:
        """Validate ``frame`` with the spec and predict its valid rows."""
        import pandas as pd  # noqa: PLC0415 - pandas is imported on first use, see features

        result = features.validate_frame(self.spec, frame)
        valid = result.valid
        if valid.empty:
            return Prediction(pd.Series([], dtype=object), None, result.report)
        labels, proba = self.predict_valid(frame_columns(valid, self.spec.feature_names))
        predictions = pd.Series(labels, index=valid.index, name="prediction")
        if proba is None:
            return Prediction(predictions, None, result.report)
        probabilities = pd.DataFrame(proba, index=valid.index, columns=self.classes)
        return Prediction(predictions, probabilities, result.report)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(
    directory: Path,
    pipeline: Pipeline,
    manifest: dict[str, Any],
    card: str,
    compiled: CompiledPipeline | None = None,
) -> Path:
    """Write an artifact atomically: build it beside ``directory``, then swap it in.

    ``directory`` may hold a previous artifact (it is replaced) or nothing; anything else is
    refused (see :func:`check_replaceable`). ``manifest`` is completed here with
    ``format_version``, ``model_version`` and ``files``.
    """
    import skops.io as sio  # noqa: PLC0415 - writing is a training-time job

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _reclaim(directory)
    check_replaceable(directory)
    staging = _new_dir(directory, "partial")
    try:
        sio.dump(pipeline, staging / PIPELINE_FILE, compression=zipfile.ZIP_DEFLATED)
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
        names = [PIPELINE_FILE, CARD_FILE]
        if compiled is not None:
            text = json.dumps(compiled.to_dict(), indent=1) + "\n"
            (staging / INFERENCE_FILE).write_text(text, encoding="utf-8")
            names.append(INFERENCE_FILE)
        files = {name: sha256_file(staging / name) for name in names}
        version = model_version(manifest["versions"]["model"], files)
        full = {
            **manifest,
            "format_version": FORMAT_VERSION,
            "model_version": version,
            "files": files,
        }
        Manifest.model_validate(full)
        (staging / MANIFEST_FILE).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            old = _new_dir(directory, "old")
            directory.rename(old / directory.name)
            staging.rename(directory)
            shutil.rmtree(old)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def model_version(package_version: str, files: Mapping[str, str]) -> str:
    """``<package_version>+<first 12 hex of a sha256>`` over one line ``<name> <sha256>``
    (newline-terminated, in name order) per file of :data:`PREDICTING_FILES` in ``files``
    (name to sha256). Other files, such as the model card, do not change it."""
    lines = "".join(f"{name} {files[name]}\n" for name in sorted(PREDICTING_FILES) if name in files)
    return f"{package_version}+{hashlib.sha256(lines.encode()).hexdigest()[:12]}"


def _new_dir(beside: Path, role: str) -> Path:
    """A new hidden folder ``.<name>.<role>-<pid>-<random>`` beside ``beside``, with the mode
    the umask gives."""
    path = beside.with_name(f".{beside.name}.{role}-{os.getpid()}-{secrets.token_hex(4)}")
    path.mkdir()
    return path


def _reclaim(directory: Path) -> None:
    """Remove what a killed earlier write to ``directory`` left beside it: its staging folder,
    and the previous artifact it had moved aside (put back if nothing replaced it)."""
    for role in ("old", "partial"):
        for stale in directory.parent.glob(f".{glob.escape(directory.name)}.{role}-*"):
            pid = stale.name.rsplit(f".{role}-", 1)[1].split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)) or not stale.is_dir():
                continue
            moved = stale / directory.name
            if role == "old" and moved.is_dir() and not directory.exists():
                moved.rename(directory)
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_replaceable(directory: Path) -> None:
    """Refuse, with :class:`ArtifactError`, to replace anything but nothing, an empty folder or
    a previous artifact: a folder whose manifest lists every file in it."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        msg = f"{directory}: exists and is not a folder; refusing to replace it with an artifact"
        raise ArtifactError(msg)
    if not directory.exists() or not any(directory.iterdir()):
        return
    try:
        listed = set(read_manifest(directory).files)
    except ArtifactError:
        listed = None
    if listed is None:
        msg = (
            f"{directory}: holds files that are not a model artifact (no valid {MANIFEST_FILE}); "
            "refusing to replace it: choose another --output or remove it yourself"
        )
        raise ArtifactError(msg)
    others = sorted(p.name for p in directory.iterdir() if p.name not in {*listed, MANIFEST_FILE})
    if others:
        msg = (
            f"{directory}: a model artifact, but it also holds {', '.join(others)}; "
            "refusing to replace it: move those files first"
        )
        raise ArtifactError(msg)


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


def _verify_files(path: Path, manifest: Manifest) -> None:
    present = sorted(p.name for p in path.iterdir() if p.name != MANIFEST_FILE)
    for name in present:
        if name.lower().endswith(FORBIDDEN_SUFFIXES):
            msg = f"{path / name}: pickle/joblib files are refused; artifacts use skops only"
            raise ArtifactError(msg)
        if name not in manifest.files:
            msg = f"{path / name}: file not listed in the manifest; refusing the artifact"
            raise ArtifactError(msg)
    for name, expected in sorted(manifest.files.items()):
        file = path / name
        if Path(name).name != name or not file.is_file():
            msg = f"{file}: listed in the manifest but missing"
            raise ArtifactError(msg)
        if sha256_file(file) != expected:
            msg = f"{file}: sha256 does not match the manifest; the file was changed or truncated"
            raise ArtifactError(msg)
    if PIPELINE_FILE not in manifest.files:
        msg = f"{path}: the manifest lists no {PIPELINE_FILE}"
        raise ArtifactError(msg)


def _check_skew(path: Path, manifest: Manifest) -> None:
    trained = manifest.versions.get("features", "")
    try:
        trained_release = Version(trained).release[:2]
    except ValueError:
        trained_release = ()
    installed = Version(features.__version__)
    if trained_release != installed.release[:2]:
        msg = (
            f"{path}: trained with features {trained or '(unknown)'}, but features "
            f"{installed} is installed; major.minor must match (train/serve skew). "
            f"Install features=={trained} or retrain"
        )
        raise ArtifactError(msg)


def _check_skops_header(file: Path) -> None:
    with file.open("rb") as handle:
        head = handle.read(4)
    if head[:1] == b"\x80" or not head.startswith(b"PK"):
        msg = f"{file}: not a skops file (a pickle or something else); refused"
        raise ArtifactError(msg)


def _load_pipeline(file: Path) -> Pipeline:
    import skops.io as sio  # noqa: PLC0415 - scikit-learn is imported only when needed
    from sklearn.pipeline import Pipeline  # noqa: PLC0415

    _check_skops_header(file)
    try:
        untrusted = sio.get_untrusted_types(file=file)
    except Exception as error:
        msg = f"{file}: unreadable skops file: {error}"
        raise ArtifactError(msg) from None
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        msg = f"{file}: holds types outside the trusted list: {', '.join(unknown)}"
        raise ArtifactError(msg)
    pipeline = sio.load(file, trusted=list(TRUSTED_TYPES))
    if not isinstance(pipeline, Pipeline):
        msg = f"{file}: holds a {type(pipeline).__name__}, expected a scikit-learn Pipeline"
        raise ArtifactError(msg)
    return pipeline


def load_artifact(path: str | Path) -> Artifact:
    """Verify and load an artifact directory; refuse it with :class:`ArtifactError` when
    anything is off (see the module docstring for the order of checks)."""
    path = Path(path)
    if not path.is_dir():
        msg = f"{path}: artifact directory not found"
        raise ArtifactError(msg)
    try:
        return _load(path)
    except OSError as error:  # unreadable files: permissions, a folder where a file belongs
        msg = f"{path}: cannot read the artifact: {error.strerror or error}"
        raise ArtifactError(msg) from None


def _load(path: Path) -> Artifact:
    manifest = read_manifest(path)
    _verify_files(path, manifest)
    _check_skew(path, manifest)
    spec = FeatureSpec.from_dict(manifest.feature_spec, source=f"{path / MANIFEST_FILE}")
    compiled = _load_compiled(path) if INFERENCE_FILE in manifest.files else None
    artifact = Artifact(path=path, manifest=manifest, spec=spec, compiled=compiled)
    if compiled is None or compiled.estimator is None:
        _ = artifact.pipeline  # its estimator is needed: load (and audit) the pipeline now
        predicts = getattr(artifact.pipeline[-1], "classes_", None)
    else:
        _check_skops_header(path / PIPELINE_FILE)  # it waits, but a pickle is refused now
        predicts = compiled.estimator.classes if spec.task == "classification" else None
    _check_classes(path, manifest, spec, predicts)
    return artifact


def _check_classes(path: Path, manifest: Manifest, spec: FeatureSpec, predicts: Any) -> None:  # noqa: ANN401
    """The manifest's class names (not covered by the file hashes) must be the model's."""
    expected = None if predicts is None else [str(c) for c in predicts]
    if spec.task != "classification":
        expected = None
    if manifest.classes != expected:
        msg = (
            f"{path / MANIFEST_FILE}: classes {manifest.classes} are not the model's "
            f"{expected}; the manifest was changed"
        )
        raise ArtifactError(msg)


def _load_compiled(path: Path) -> CompiledPipeline:
    file = path / INFERENCE_FILE
    try:
        return CompiledPipeline.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except RecursionError:
        msg = f"{file}: malformed compiled model (JSON nested too deeply)"
        raise ArtifactError(msg) from None
    except Exception as error:  # untrusted data: any failure to read it is a refusal
        msg = f"{file}: malformed compiled model ({type(error).__name__}: {error})"
        raise ArtifactError(msg) from None


def load_artifact_or_default(path: str | Path | None) -> Artifact:
    """``load_artifact(path)``, or the bundled default artifact when ``path`` is None."""
    return load_default() if path is None else load_artifact(path)


def default_artifact_dir() -> Path:
    """Where the bundled default artifact lives inside the installed ``model`` package."""
    return Path(str(resources.files("model"))) / "default_artifact"


def load_default() -> Artifact:
    """Load the artifact bundled in the installed ``model`` (see ``model train --bundle``)."""
    path = default_artifact_dir()
    if not (path / MANIFEST_FILE).is_file():
        msg = (
            "no default artifact is bundled in this installation of model; "
            "train one with `uv run model train --bundle`, or pass an artifact path"
        )
        raise ArtifactError(msg)
    return load_artifact(path)
