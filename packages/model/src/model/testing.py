"""Helpers for tests: the bundled default artifact set aside, and signing keys."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.bundled import default_artifact_dir


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
