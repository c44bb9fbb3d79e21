"""Signed artifacts: who made a model, not only that it is intact.

The manifest lists the sha256 of every other file and the model version, so an Ed25519
signature over ``manifest.json``'s bytes covers the whole artifact. ``model sign`` (or
``model train --sign KEY``) writes it to :data:`SIGNATURE_FILE`; loading with a public key
(:func:`model.load_artifact`'s ``public_key``, ``model info --public-key``, ``serving serve
--public-key``, ``serving score --public-key``) verifies it before anything else of the
artifact is read, and refuses an unsigned or wrongly signed artifact. Keys are PEM files, as
``openssl genpkey -algorithm ed25519`` makes them. ``cryptography`` is imported only here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from model.exceptions import ArtifactError
from model.manifest import MANIFEST_FILE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNATURE_FILE = "signature.json"
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 4096


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex of the sha256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (unencrypted)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    load = partial(serialization.load_pem_private_key, password=None)
    key = _load_key(path, load, "private key without a password")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        msg = f"{path}: not an Ed25519 private key (openssl genpkey -algorithm ed25519)"
        raise ArtifactError(msg)
    return key


def public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    key = _load_key(path, serialization.load_pem_public_key, "public key")
    if not isinstance(key, ed25519.Ed25519PublicKey):
        msg = f"{path}: not an Ed25519 public key (openssl pkey -in KEY -pubout)"
        raise ArtifactError(msg)
    return key


def _load_key(path: Path, load: Callable[[bytes], object], what: str) -> object:
    """The key a PEM file holds, or :class:`ArtifactError` naming the file."""
    try:
        return load(Path(path).read_bytes())
    except OSError as error:
        msg = f"{path}: cannot read the key: {error.strerror or error}"
        raise ArtifactError(msg) from None
    except (ValueError, TypeError) as error:
        msg = f"{path}: not a PEM {what} ({error})"
        raise ArtifactError(msg) from None


def sign_artifact(artifact: Path, key_file: Path) -> str:
    """Sign the artifact's ``manifest.json`` with the private key in ``key_file``; write
    :data:`SIGNATURE_FILE` (replacing an older one) and return the key id."""
    key = private_key(key_file)
    manifest = Path(artifact) / MANIFEST_FILE
    if not manifest.is_file():
        msg = f"{artifact}: not a model artifact (no {MANIFEST_FILE}); nothing to sign"
        raise ArtifactError(msg)
    signed = key_id(key.public_key())
    signature = {
        "algorithm": ALGORITHM,
        "key_id": signed,
        "signed_file": MANIFEST_FILE,
        "signature": base64.b64encode(key.sign(manifest.read_bytes())).decode(),
    }
    staged = Path(artifact) / f".{SIGNATURE_FILE}.partial"
    staged.write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    staged.replace(Path(artifact) / SIGNATURE_FILE)
    return signed


def verify_signature(
    artifact: Path, manifest: bytes, signature: bytes | None, key_file: Path
) -> str:
    """Check ``signature`` (the bytes of the artifact's :data:`SIGNATURE_FILE`, None when it
    has none) over ``manifest`` (those of its ``manifest.json``) with the public key in
    ``key_file``, before anything else of the artifact is read; return the key id, or raise
    :class:`ArtifactError` saying why. ``artifact`` names the folder in messages."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415

    key = public_key(key_file)
    expected = key_id(key)
    file = Path(artifact) / SIGNATURE_FILE
    if signature is None:
        msg = (
            f"{artifact}: not signed (no {SIGNATURE_FILE}), and a signature is required "
            f"(public key {key_file}, key id {expected}); sign it with `model sign`"
        )
        raise ArtifactError(msg)
    try:
        raw = json.loads(signature)
        if raw["algorithm"] != ALGORITHM or raw["signed_file"] != MANIFEST_FILE:
            raise ValueError("another algorithm or signed file")  # noqa: EM101, TRY301
        signed = base64.b64decode(raw["signature"], validate=True)
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        msg = f"{file}: not a signature this package writes ({type(error).__name__})"
        raise ArtifactError(msg) from None
    try:
        key.verify(signed, manifest)
    except InvalidSignature:
        msg = (
            f"{artifact}: the signature does not verify with the public key {key_file} (key id "
            f"{expected}; signed by key id {raw.get('key_id', '?')}): the artifact was changed "
            "after signing, or signed by another key"
        )
        raise ArtifactError(msg) from None
    return expected
