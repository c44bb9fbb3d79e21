"""Public helpers for tests and benchmarks: seeded frames that satisfy (or deliberately break) a
spec, and what the workspace's lock installs for one package."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from features.spec import FeatureSpec


def sample_frame(
    spec: FeatureSpec, n_rows: int, *, seed: int = 0, null_share: float = 0.05, target: bool = True
) -> pd.DataFrame:
    """A valid frame of ``n_rows``: values drawn within each column's declared range or
    categories, and about ``null_share`` nulls in each nullable column."""
    rng = np.random.default_rng(seed)
    columns = [*spec.features, *([spec.target] if target else [])]
    data: dict[str, pd.Series] = {}
    for column in columns:
        series = pd.Series(column.draw(rng, n_rows), dtype=object)
        if column.nullable:
            series[rng.random(n_rows) < null_share] = None
        series = series.infer_objects()
        data[column.name] = series
    return pd.DataFrame(data)


def locked_packages(package: str, workspace: str | Path) -> set[str]:
    """The distributions ``uv sync --package PACKAGE`` installs from the workspace's lock.

    Asks ``uv export`` (uv must be on PATH), so it proves what the lock gives that package,
    whatever the current environment holds.
    """
    uv = shutil.which("uv")
    if uv is None:
        msg = "uv is not on PATH; it is needed to read what the lock gives each package"
        raise RuntimeError(msg)
    command = [
        uv,
        "export",
        "--format",
        "pylock.toml",
        "--package",
        package,
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--directory",
        str(workspace),
    ]
    lock = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {entry["name"] for entry in tomllib.loads(lock)["packages"]}  # normalised names
