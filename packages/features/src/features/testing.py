"""Helpers for tests and benchmarks: seeded frames that satisfy (or deliberately break) a spec."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from features.spec import Column, FeatureSpec


def _values(column: Column, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    if column.kind == "numeric":
        low = column.min if column.min is not None else -1e3
        high = column.max if column.max is not None else 1e3
        return rng.uniform(low, high, n_rows)
    if column.kind == "categorical":
        return rng.choice(np.asarray(column.categories, dtype=object), n_rows)
    return rng.random(n_rows) < 0.5


def sample_frame(
    spec: FeatureSpec, n_rows: int, *, seed: int = 0, null_share: float = 0.05, target: bool = True
) -> pd.DataFrame:
    """A valid frame of ``n_rows``: values drawn within each column's declared range or
    categories, and about ``null_share`` nulls in each nullable column."""
    rng = np.random.default_rng(seed)
    columns = [*spec.features, *([spec.target] if target else [])]
    data: dict[str, pd.Series] = {}
    for column in columns:
        series = pd.Series(_values(column, n_rows, rng), dtype=object)
        if column.nullable:
            series[rng.random(n_rows) < null_share] = None
        if column.kind == "numeric":
            series = series.astype("float64")
        data[column.name] = series
    return pd.DataFrame(data)


def undeclared_imports(distribution: str, source: str | Path) -> list[str]:
    """Top-level imports under ``source`` that ``distribution`` does not declare.

    A package may import the standard library, itself and its declared dependencies only;
    anything else works by accident in a shared environment and breaks once installed alone.
    Returns ``"module (file:line)"`` entries, sorted; empty means clean.
    """
    declared = {
        canonicalize_name(Requirement(r).name) for r in metadata.requires(distribution) or []
    }
    declared.add(canonicalize_name(distribution))
    providers = metadata.packages_distributions()
    problems: set[str] = set()
    for path in sorted(Path(source).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "__future__":
                    continue
                owners = {canonicalize_name(d) for d in providers.get(top, [top])}
                if not owners & declared:
                    problems.add(f"{top} ({path.name}:{node.lineno})")
    return sorted(problems)


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
        "--package",
        package,
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-header",
        "--no-annotate",
        "--directory",
        str(workspace),
    ]
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    names: set[str] = set()
    for raw in lines.splitlines():
        line = raw.strip()
        if line.startswith("-e "):
            names.add(canonicalize_name(Path(line[3:]).name))
        elif line and not line.startswith(("#", "-")):
            names.add(canonicalize_name(Requirement(line).name))
    return names
