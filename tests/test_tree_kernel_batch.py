"""Batch scoring with the compiled tree kernel (the workspace installs serving[fast]): `serving
score` and the Dask engine write exactly what NumPy alone writes for a gradient-boosting model,
the kernel doing the work; a 10-row score never imports numba (its start-up stays NumPy's)."""

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from model import Artifact, HistGradientBoosting, TrainConfig, load_artifact, save_result, train
from serving.dask_engine import PARTS, score_dataset

from .conftest import ROOT

pytest.importorskip("numba", reason="the workspace installs serving[fast]")
PENGUINS = pd.read_csv(ROOT / "data" / "penguins.csv").drop(columns=["year"])
ROWS = 20_000  # x 600 trees: above the rows x trees from which the kernel predicts


@pytest.fixture(scope="module")
def boosting(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
    estimator = HistGradientBoosting(kind="hist_gradient_boosting")  # 200 iterations x 3
    result = train(config.model_copy(update={"estimator": estimator}))
    folder = tmp_path_factory.mktemp("kernel") / "boosting"
    return load_artifact(save_result(result, folder))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Parquet files of penguins resampled with noise (some values missing, as in the
    table), ROWS rows each."""
    root = tmp_path_factory.mktemp("kernel-data") / "penguins"
    root.mkdir()
    rng = np.random.default_rng(27)
    for name in ("a", "b"):
        frame = PENGUINS.iloc[rng.integers(0, len(PENGUINS), ROWS)].reset_index(drop=True)
        for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
            frame[column] = frame[column] * rng.normal(1.0, 0.02, ROWS)
        frame.to_parquet(root / f"{name}.parquet", index=False)
    return root


def score(argv: list[str], *, numba: bool, python: Sequence[str] = ()) -> str:
    """`serving score ARGV` in a fresh process, numba there or (as without the extra) not;
    what it says about the modules it imported."""
    block = "" if numba else "sys.modules['numba'] = None\n"  # as if numba were not installed
    code = (
        f"import sys\n{block}from serving.cli import main\ncode = main({argv!r})\n"
        "print('kernel', 'model.tree_kernel' in sys.modules)\nsys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, *python, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_serving_score_with_the_kernel_writes_what_numpy_writes(
    boosting: Artifact, dataset: Path, tmp_path: Path
) -> None:
    source = dataset / "a.parquet"
    args = ["score", "--artifact", str(boosting.path), str(source)]
    fast = score([*args, str(tmp_path / "fast.parquet")], numba=True)
    assert "kernel True" in fast
    plain = score([*args, str(tmp_path / "numpy.parquet")], numba=False)
    assert "kernel False" in plain
    written = pd.read_parquet(tmp_path / "fast.parquet")
    assert len(written) > 0.9 * ROWS
    assert written.equals(pd.read_parquet(tmp_path / "numpy.parquet"))


def test_a_ten_row_score_never_imports_numba(
    boosting: Artifact, dataset: Path, tmp_path: Path
) -> None:
    """`python -X importtime`: not one numba module among those a 10-row score imports."""
    small = tmp_path / "ten.csv"
    pd.read_parquet(dataset / "a.parquet").head(10).to_csv(small, index=False)
    argv = ["score", "--artifact", str(boosting.path), str(small), str(tmp_path / "ten.out.csv")]
    said = score(argv, numba=True, python=["-X", "importtime"])
    assert "kernel False" in said
    imported = {line.rsplit("|", 1)[-1].strip() for line in said.splitlines() if "|" in line}
    assert "serving.cli" in imported
    assert not {m for m in imported if m == "numba" or m.startswith(("numba.", "llvmlite"))}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as local:
        yield local.scheduler_address


def test_the_dask_engine_with_the_kernel_writes_what_numpy_writes(
    boosting: Artifact, dataset: Path, cluster: str, tmp_path: Path
) -> None:
    """Workers predict with the kernel (one thread each: Dask sets OMP_NUM_THREADS=1), and
    each part holds what the local engine writes with NumPy alone."""
    output = tmp_path / "scores"
    score_dataset(boosting, dataset, output, scheduler=cluster, chunk_rows=ROWS)
    with Client(cluster) as client:
        loaded = client.run(lambda: "model.tree_kernel" in sys.modules)
    assert any(loaded.values())
    parts = pd.read_json(output / PARTS)
    for source, part in zip(parts["source"], parts["part"], strict=True):
        local = tmp_path / f"{Path(source).stem}.numpy.parquet"
        argv = ["score", "--artifact", str(boosting.path), source, str(local)]
        score(argv, numba=False)
        assert pd.read_parquet(output / part).equals(pd.read_parquet(local))
