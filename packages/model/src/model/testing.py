"""Helpers for tests: the bundled default artifact set aside, signing keys, and a manifest
rewritten with its model version recomputed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.bundled import default_artifact_dir
from model.manifest import MANIFEST_FILE, model_version


@contextmanager
def bundle_set_aside() -> Iterator[Path]:
    """Run with no bundled default artifact, then put back whatever was there.

    Yields the bundle's directory; anything the block writes there is removed on exit.
    """
    bundle = default_artifact_dir()
    aside = bundle.with_name("default_artifact.aside")
    if bundle.exists():
        bundle.rename(aside)
    try:
        yield bundle
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
        if aside.exists():
            aside.rename(bundle)


def key_pair(folder: Path, name: str = "signer") -> tuple[Path, Path]:
    """A fresh Ed25519 key pair written as PEM files ``NAME.pem`` (private, unencrypted) and
    ``NAME.pub`` in ``folder``, as ``openssl genpkey -algorithm ed25519`` makes them."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    key = Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def rewrite_manifest(artifact: Path, **changes: object) -> None:
    """Change fields of the manifest of the artifact folder ``artifact`` and recompute its
    model version, as whoever can write the folder could: the artifact loads (unsigned) and
    shows the changes under another version."""
    file = artifact / MANIFEST_FILE
    manifest = json.loads(file.read_text(encoding="utf-8")) | changes
    manifest["model_version"] = model_version(manifest, manifest["model_version_covers"])
    file.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
