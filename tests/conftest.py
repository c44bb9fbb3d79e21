import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.artifact import default_artifact_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_bundle() -> Iterator[Path]:
    """Run with no bundled default artifact; put back whatever was there afterwards."""
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
