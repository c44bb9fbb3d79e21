"""The Dask engine on a real distributed.LocalCluster with worker processes: the same
predictions, rejects, reasons and totals as the local engine, file by file; nothing at OUTPUT
after a failure; an existing scheduler; a clear message without Dask installed."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster

from model import Artifact, TrainConfig, load_artifact, save_result, train
from serving import score_file
from serving.dask_engine import PARTS, score_dataset

from .conftest import ROOT

PENGUINS = pd.read_csv(ROOT / "data" / "penguins.csv").drop(columns=["year"])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    result = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    return load_artifact(save_result(result, tmp_path_factory.mktemp("dask") / "artifact"))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A hive-partitioned Parquet dataset: valid rows, some invalid ones, an empty partition
    and a partition whose every row is rejected."""
    root = tmp_path / "penguins"
    (root / "year=2007").mkdir(parents=True)
    (root / "year=2008").mkdir()
    mixed = PENGUINS.iloc[150:].copy()
    mixed.loc[mixed.index[:7], "bill_length_mm"] = 500.0
    PENGUINS.iloc[:150].to_parquet(root / "year=2007" / "a.parquet", index=False)
    mixed.to_parquet(root / "year=2008" / "b.parquet", index=False)
    PENGUINS.iloc[:0].to_parquet(root / "year=2008" / "empty.parquet", index=False)
    wrong = PENGUINS.iloc[:12].assign(sex="unknown")
    wrong.to_parquet(root / "year=2008" / "wrong.parquet", index=False)
    (root / "_SUCCESS").write_text("")  # dataset markers are not inputs
    return root


def test_same_results_as_the_local_engine(
    artifact: Artifact, dataset: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scores"
    summary = score_dataset(artifact, dataset, output, chunk_rows=64, workers=2)
    parts = json.loads((output / PARTS).read_text())
    assert [Path(p["source"]).name for p in parts] == [
        "a.parquet",
        "b.parquet",
        "empty.parquet",
        "wrong.parquet",
    ]
    assert summary.input_rows == len(PENGUINS) + 12
    assert summary.input_rows == summary.scored_rows + summary.rejected_rows
    assert summary.rejected_rows == 7 + 12
    assert len(summary.peak_rss_mib) >= 1
    for part in parts:  # each part is exactly what the local engine writes for that file
        local = tmp_path / "local" / part["part"]
        local.parent.mkdir(exist_ok=True)
        expected = score_file(artifact, Path(part["source"]), local, chunk_rows=64)
        assert part["input_rows"] == expected.input_rows
        assert pd.read_parquet(output / part["part"]).equals(pd.read_parquet(local))
        if expected.rejects is None:
            assert part["rejects"] is None
            continue
        rejected = pd.read_parquet(summary.rejects / part["rejects"])
        assert rejected.equals(pd.read_parquet(expected.rejects))
        assert rejected["reasons"].str.len().min() > 0
    assert not list(tmp_path.glob(".scores.partial-*"))


def test_a_file_that_fails_leaves_nothing_at_the_output(
    artifact: Artifact, dataset: Path, tmp_path: Path
) -> None:
    (dataset / "year=2008" / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    output = tmp_path / "scores"
    with pytest.raises(Exception, match=r"broken\.parquet"):
        score_dataset(artifact, dataset, output, chunk_rows=64, workers=2)
    assert not output.exists()
    assert not output.with_name("scores.rejects").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["penguins"]


def test_a_failure_stops_the_running_tasks_before_it_returns(
    artifact: Artifact, tmp_path: Path
) -> None:
    """When one file fails while another is being scored, the run tells the running task to
    stop and waits for it: once the error is raised, nothing of the run still runs on the
    cluster (the workers outlive the run here), so nothing can write beside OUTPUT any more."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a-broken.parquet").write_bytes(b"PAR1 not really parquet")
    pd.concat([PENGUINS] * 300).to_csv(inputs / "b-big.csv", index=False)  # ~2,000 chunks
    output = tmp_path / "scores"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(Exception, match=r"a-broken\.parquet"):
            score_dataset(
                artifact, inputs, output, scheduler=cluster.scheduler_address, chunk_rows=50
            )
        running = client.run(lambda dask_worker: dask_worker.state.executing_count)
    assert running == dict.fromkeys(running, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_csv_glob_on_an_existing_scheduler(artifact: Artifact, tmp_path: Path) -> None:
    for index in range(3):
        PENGUINS.iloc[index * 100 : (index + 1) * 100].to_csv(
            tmp_path / f"part{index}.csv", index=False
        )
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        summary = score_dataset(
            artifact,
            str(tmp_path / "part*.csv"),
            tmp_path / "out",
            scheduler=cluster.scheduler_address,
            chunk_rows=1000,
        )
    assert (summary.input_rows, summary.rejected_rows) == (300, 0)
    assert summary.rejects is None
    scored = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*")))
    assert len(scored) == 300


def test_the_command_and_its_refusals(artifact: Artifact, dataset: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "serving.cli", "score", "--artifact", str(artifact.path)]
    output = tmp_path / "scores"
    done = subprocess.run(
        [*command, str(dataset), str(output), "--engine", "dask", "--max-reject-share", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "356 input rows = 337 scored + 19 rejected" in done.stdout
    refused = subprocess.run(
        [*command, str(dataset), str(dataset / "year=2007"), "--engine", "dask"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert refused.returncode == 1
    assert "not a dataset this command wrote" in refused.stderr
    argv = [*command[3:], str(dataset), str(tmp_path / "x"), "--engine", "dask"]
    without = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['distributed'] = None\n"  # as if Dask were not installed
            f"from serving.cli import main\nsys.exit(main({argv!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert without.returncode == 1
    assert "install the serving[dask] extra" in without.stderr
