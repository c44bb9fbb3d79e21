"""Environment set-up: tox with tox-uv against tox with its pip (virtualenv) backend, creating
the `model-test` environment (model, features and the test tools at the locked versions) from
nothing, with a cold and with a warm package cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import ROOT, median, report

CONFIG = """\
requires = ["tox>=4.67", "tox-uv>=1.37"]

[env.uv]
runner = "uv-venv-lock-runner"
package = "editable"
package_root = "packages/model"
dependency_groups = ["test"]
commands = []

[env.pip]
runner = "virtualenv"
package = "skip"
deps = ["-r {work}/requirements.txt", "-e packages/features", "-e packages/model"]
commands = []
"""


def _requirements(work: Path) -> None:
    """The exact versions the lock gives model-test, as a pip requirements file."""
    exported = subprocess.run(
        [
            "uv",
            "export",
            "--package",
            "model",
            "--group",
            "test",
            "--frozen",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--no-emit-workspace",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (work / "requirements.txt").write_text(exported)


def _create(backend: str, work: Path, cache: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_PROJECT", "VIRTUAL_ENV"))}
    env |= {
        "UV_CACHE_DIR": str(cache / "uv"),
        "PIP_CACHE_DIR": str(cache / "pip"),
        "PIP_NO_INPUT": "1",
    }
    shutil.rmtree(work / ".tox", ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [
            "tox",
            "-c",
            str(work / "tox.toml"),
            "--root",
            str(ROOT),
            "--workdir",
            str(work / ".tox"),
            "-e",
            backend,
            "--notest",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def run(work: Path, *, cold_runs: int = 2, warm_runs: int = 3) -> None:
    """Median creation time per backend, cold (empty cache) and warm (cache filled)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "tox.toml").write_text(CONFIG.format(work=work))
    _requirements(work)
    figures: dict[tuple[str, str], float] = {}
    for backend in ("uv", "pip"):
        cold = []
        for index in range(cold_runs):
            cache = work / f"cache-{backend}-cold-{index}"
            cold.append(_create(backend, work, cache))
            if index < cold_runs - 1:
                shutil.rmtree(cache, ignore_errors=True)
        warm_cache = work / f"cache-{backend}-cold-{cold_runs - 1}"
        warm = [_create(backend, work, warm_cache) for _ in range(warm_runs)]
        figures[backend, "cold"], figures[backend, "warm"] = median(cold), median(warm)
    cold_ratio = figures["pip", "cold"] / figures["uv", "cold"]
    warm_ratio = figures["pip", "warm"] / figures["uv", "warm"]
    report(
        f"creating model-test from an empty env (median of {cold_runs} cold, {warm_runs} warm)",
        [
            (f"tox + {b}, {c} cache", f"{figures[b, c]:.1f} s")
            for b in ("uv", "pip")
            for c in ("cold", "warm")
        ],
        f"tox-uv is {cold_ratio:.1f}x faster cold, {warm_ratio:.1f}x warm (target >= 10x: "
        f"{'met' if min(cold_ratio, warm_ratio) >= 10 else 'NOT met'})",
    )
