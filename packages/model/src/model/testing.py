"""Helpers for tests that exercise the bundled default artifact."""

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
