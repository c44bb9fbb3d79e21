"""Writing an artifact atomically, and loading one: read once, verify, audit, then build.

:func:`load_artifact` reads each file of the artifact once (:mod:`model.folder`: the path
resolved once, no link inside the folder, regular files only), checks those bytes and builds
the model from those same bytes, so a file changed on disk meanwhile is never used. It
trusts nothing it has not checked, in this order: with a public key, the signature over the
manifest's bytes (:mod:`model.signing`); the manifest's format version and fields
(:mod:`model.manifest`); that no unlisted, pickle or joblib file is present, and every
file's sha256; the features major.minor it was trained with (train/serve skew); the skops
file's types (:func:`model.audit.audit_skops`, for every artifact, compiled or not: a loaded
artifact is always an audited one); then the compiled form, its numbers checked
(:mod:`model.compiled`), and the pipeline when the compiled form does not predict alone;
then the manifest's classes against the model's, its name and task against its config and
spec; last, the model version against the content it covers. Any failure raises
:class:`ArtifactError` saying why.

:func:`write_artifact` builds an artifact beside its destination and swaps it in, and audits
the skops file it wrote, so training never leaves an artifact that loading would refuse.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import Version

import features
from features import FeatureSpec
from model.audit import audit_skops
from model.compiled import CompiledPipeline
from model.exceptions import ArtifactError
from model.folder import ArtifactFolder
from model.manifest import (
    CARD_FILE,
    FORBIDDEN_SUFFIXES,
    FORMAT_VERSION,
    INFERENCE_FILE,
    MANIFEST_FILE,
    PIPELINE_FILE,
    Manifest,
    check_claims,
    covered,
    model_version,
    parse_manifest,
    sha256_file,
)
from model.predictor import Artifact
from model.signing import MAX_SIGNATURE_BYTES, SIGNATURE_FILE, verify_signature

UNLISTED = (MANIFEST_FILE, SIGNATURE_FILE)
"""The files an artifact holds that its manifest cannot list: itself, and its signature."""

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


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
    ``format_version``, ``model_version`` and ``files``. A pipeline whose skops file the
    load-time audit would refuse is refused here, and nothing is written.
    """
    import skops.io as sio  # noqa: PLC0415 - writing is a training-time job

    directory = Path(directory)
    _check_not_inside_an_artifact(directory)  # before a folder is made inside it
    directory.parent.mkdir(parents=True, exist_ok=True)
    _reclaim(directory)
    _check_contents(directory)
    staging = _new_dir(directory, "partial")
    try:
        sio.dump(pipeline, staging / PIPELINE_FILE, compression=zipfile.ZIP_DEFLATED)
        audit_skops((staging / PIPELINE_FILE).read_bytes(), staging / PIPELINE_FILE)
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
        names = [PIPELINE_FILE, CARD_FILE]
        if compiled is not None:
            text = json.dumps(compiled.to_dict(), indent=1) + "\n"
            (staging / INFERENCE_FILE).write_text(text, encoding="utf-8")
            names.append(INFERENCE_FILE)
        files = {name: sha256_file(staging / name) for name in names}
        covers = covered(compiled is not None and compiled.estimator is not None)
        full = {**manifest, "format_version": FORMAT_VERSION, "files": files}
        full |= {"model_version": model_version(full, covers), "model_version_covers": covers}
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
    a previous artifact: a folder whose manifest lists every file in it; or to write an
    artifact inside another one (which would then hold a folder its manifest does not list,
    and be refused when loaded)."""
    _check_not_inside_an_artifact(directory)
    _check_contents(directory)


def _check_not_inside_an_artifact(directory: Path) -> None:
    """Refuse, with :class:`ArtifactError`, a folder inside an artifact's folder (see
    :func:`inside_an_artifact`)."""
    outer = inside_an_artifact(_resolved(directory).parent)
    if outer is not None:
        msg = (
            f"{directory}: inside the artifact folder {outer}, which holds the model's own "
            "files only; choose an --output outside it"
        )
        raise ArtifactError(msg)


def _check_contents(directory: Path) -> None:
    """Refuse, with :class:`ArtifactError`, a ``directory`` that is not nothing, an empty
    folder or a previous artifact (see :func:`check_replaceable`)."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        msg = f"{directory}: exists and is not a folder; refusing to replace it with an artifact"
        raise ArtifactError(msg)
    if not directory.exists() or not any(directory.iterdir()):
        return
    listed = _listed_files(directory)
    if listed is None:
        msg = (
            f"{directory}: holds files that are not a model artifact (no valid {MANIFEST_FILE}); "
            "refusing to replace it: choose another --output or remove it yourself"
        )
        raise ArtifactError(msg)
    others = sorted(p.name for p in directory.iterdir() if p.name not in {*listed, *UNLISTED})
    if others:
        msg = (
            f"{directory}: a model artifact, but it also holds {', '.join(others)}; "
            "refusing to replace it: move those files first"
        )
        raise ArtifactError(msg)


def inside_an_artifact(path: Path) -> Path | None:
    """The artifact folder ``path`` is or lies inside, links resolved: ``path`` itself or the
    nearest of its parents whose manifest lists a pipeline (an artifact of any format
    version), or None. Nothing may be written there: an artifact holds only the files its
    manifest lists, and one more would have it refused when it is next loaded."""
    where = _resolved(path)
    return next(
        (
            folder
            for folder in (where, *where.parents)
            if PIPELINE_FILE in (_listed_files(folder) or ())
        ),
        None,
    )


def _resolved(path: Path) -> Path:
    """``path`` with links resolved, or only made absolute when they cannot be (a loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop
        return path.absolute()


def _listed_files(directory: Path) -> set[str] | None:
    """The files a manifest lists, of any format version (an artifact from an older version of
    this package is replaceable too), or None when there is no readable manifest."""
    try:
        raw = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    files = raw.get("files") if isinstance(raw, dict) else None
    return set(files) if isinstance(files, dict) else None


@dataclass(frozen=True)
class _Verified:
    """An artifact's files as read once and verified: its folder (resolved), its manifest,
    the sha256 of the manifest's bytes, and the bytes of every file the manifest lists."""

    path: Path
    manifest: Manifest
    digest: str
    files: dict[str, bytes]


def _read_verified(folder: ArtifactFolder, public_key: Path | None) -> _Verified:
    """Read the manifest (and, with a key, the signature, verified first), then each file it
    lists, once; refuse a forbidden or unlisted file and any sha256 that does not match."""
    path = folder.path
    try:
        manifest_bytes = folder.read(MANIFEST_FILE)
    except FileNotFoundError:
        msg = f"{path}: not a model artifact (no {MANIFEST_FILE})"
        raise ArtifactError(msg) from None
    if public_key is not None:
        try:
            signature: bytes | None = folder.read(SIGNATURE_FILE, MAX_SIGNATURE_BYTES)
        except FileNotFoundError:
            signature = None
        verify_signature(path, manifest_bytes, signature, public_key)
    manifest = parse_manifest(manifest_bytes, path / MANIFEST_FILE)
    for name in folder.names():
        if name.lower().endswith(FORBIDDEN_SUFFIXES):
            msg = f"{path / name}: pickle/joblib files are refused; artifacts use skops only"
            raise ArtifactError(msg)
        if name not in manifest.files and name not in UNLISTED:
            msg = f"{path / name}: file not listed in the manifest; refusing the artifact"
            raise ArtifactError(msg)
    if PIPELINE_FILE not in manifest.files:
        msg = f"{path}: the manifest lists no {PIPELINE_FILE}"
        raise ArtifactError(msg)
    files = {
        name: _read_listed(folder, name, expected) for name, expected in manifest.files.items()
    }
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    return _Verified(path, manifest, digest, files)


def _read_listed(folder: ArtifactFolder, name: str, expected: str) -> bytes:
    """The bytes of a file the manifest lists, once their sha256 is the one it lists."""
    file = folder.path / name
    try:
        data = folder.read(name)
    except FileNotFoundError:
        msg = f"{file}: listed in the manifest but missing"
        raise ArtifactError(msg) from None
    if hashlib.sha256(data).hexdigest() != expected:
        msg = f"{file}: sha256 does not match the manifest; the file was changed or truncated"
        raise ArtifactError(msg)
    return data


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


def load_artifact(path: str | Path, public_key: str | Path | None = None) -> Artifact:
    """Read each file of an artifact folder once, verify and audit those bytes, and build the
    model from them; refuse it with :class:`ArtifactError` when anything is off (see the
    module docstring for the order of checks). With ``public_key`` (a PEM file), its
    signature must verify first (:mod:`model.signing`). A link to the folder is resolved once:
    the artifact's ``path`` is the folder it was read from."""
    try:
        with ArtifactFolder(Path(path)) as folder:
            verified = _read_verified(folder, None if public_key is None else Path(public_key))
    except OSError as error:  # unreadable: permissions, a loop of links, an I/O error
        msg = f"{path}: cannot read the artifact: {error.strerror or error}"
        raise ArtifactError(msg) from None
    return _build(verified)


def _build(verified: _Verified) -> Artifact:
    """The model, from the verified bytes alone: nothing is read from disk again."""
    path, manifest, files = verified.path, verified.manifest, verified.files
    _check_skew(path, manifest)
    audit_skops(files[PIPELINE_FILE], path / PIPELINE_FILE)  # before the pipeline is used
    spec = FeatureSpec.from_dict(manifest.feature_spec, source=f"{path / MANIFEST_FILE}")
    check_claims(path / MANIFEST_FILE, manifest, spec.task)
    compiled = None
    if INFERENCE_FILE in files:
        compiled = _load_compiled(files[INFERENCE_FILE], path / INFERENCE_FILE, spec)
    artifact = Artifact(path, manifest, spec, compiled, verified.digest, files[PIPELINE_FILE])
    if compiled is None or compiled.estimator is None:
        _ = artifact.pipeline  # its estimator is needed: load it now (skops audits it again)
        predicts = getattr(artifact.pipeline[-1], "classes_", None)
    else:
        predicts = compiled.estimator.classes if spec.task == "classification" else None
    _check_classes(path, manifest, spec, predicts)
    _check_version(path, manifest, covered(artifact.numpy_only))
    return artifact


def _check_version(path: Path, manifest: Manifest, covers: list[str]) -> None:
    """The model version must be the one its covered content gives (:func:`model_version`)."""
    computed = model_version(manifest.model_dump(mode="json"), covers)
    if manifest.model_version_covers != covers or manifest.model_version != computed:
        msg = (
            f"{path / MANIFEST_FILE}: model version {manifest.model_version} does not match "
            f"what the artifact holds ({computed}, covering {', '.join(covers)}): something "
            "that decides its predictions, or the metrics it claims, was changed; retrain it or "
            "restore the original"
        )
        raise ArtifactError(msg)


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


def _load_compiled(data: bytes, file: Path, spec: FeatureSpec) -> CompiledPipeline:
    """The compiled form, every field checked, its preprocessing reading the spec's features."""
    try:
        compiled = CompiledPipeline.from_dict(json.loads(data))
        compiled.check_inputs(spec)
    except RecursionError:
        msg = f"{file}: malformed compiled model (JSON nested too deeply)"
        raise ArtifactError(msg) from None
    except ValueError as error:  # a checked field, named by the message (or JSON, Unicode)
        msg = f"{file}: malformed compiled model: {error}"
        raise ArtifactError(msg) from None
    except Exception as error:  # untrusted data: any failure to read it is a refusal
        msg = f"{file}: malformed compiled model ({type(error).__name__}: {error})"
        raise ArtifactError(msg) from None
    return compiled
