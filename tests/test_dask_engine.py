"""The Dask engine on a real distributed.LocalCluster with worker processes: the same
predictions, rejects, reasons and totals as the local engine, file by file; nothing at OUTPUT
after a failure; an existing scheduler; a clear message without Dask installed."""

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster

from model import Artifact, ArtifactError, TrainConfig, load_artifact, save_result, train
from serving import score_file
from serving.dask_engine import PARTS, score_dataset
from serving.exceptions import TableError

from .conftest import ROOT

PENGUINS = pd.read_csv(ROOT / "data" / "penguins.csv").drop(columns=["year"])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    result = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    return load_artifact(save_result(result, tmp_path_factory.mktemp("dask") / "artifact"))


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """One cluster for the tests of what a run writes (each run has its own otherwise)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


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
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    refused = subprocess.run(
        [*command, str(dataset), str(mine), "--engine", "dask"],
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


def test_an_earlier_dataset_is_replaced_file_by_file(
    artifact: Artifact, scheduler: str, dataset: Path, tmp_path: Path
) -> None:
    """A second run replaces exactly the files the first one listed: parts it no longer
    writes go, and the rejects folder goes when nothing is rejected any more."""
    output = tmp_path / "scores"
    score_dataset(artifact, dataset, output, chunk_rows=1000, scheduler=scheduler)
    first = sorted(p.name for p in output.iterdir())
    assert first == [PARTS, *(f"part-{i:05d}.parquet" for i in range(4))]
    assert output.with_name("scores.rejects").is_dir()
    summary = score_dataset(
        artifact, dataset / "year=2007", output, chunk_rows=1000, scheduler=scheduler
    )
    assert summary.rejects is None
    assert sorted(p.name for p in output.iterdir()) == [PARTS, "part-00000.parquet"]
    assert [p["input_rows"] for p in json.loads((output / PARTS).read_text())] == [150]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["penguins", "scores"]


@pytest.mark.parametrize("foreign", ["notes.txt", ".hidden", "part-99999.parquet", "sub/"])
def test_an_output_holding_other_files_is_refused_and_kept(
    artifact: Artifact, scheduler: str, dataset: Path, tmp_path: Path, foreign: str
) -> None:
    """Nothing the command did not write is ever removed: an earlier dataset holding one
    more file (even one named like a part) is refused, naming the file, and left as it was."""
    output = tmp_path / "scores"
    score_dataset(artifact, dataset / "year=2007", output, chunk_rows=1000, scheduler=scheduler)
    if foreign.endswith("/"):
        (output / foreign).mkdir()
    else:
        (output / foreign).write_text("mine")
    before = sorted(p.name for p in output.iterdir())
    with pytest.raises(
        TableError, match=rf"holds files this command did not write \({foreign.rstrip('/')}\)"
    ):
        score_dataset(artifact, dataset, output, chunk_rows=1000, scheduler=scheduler)
    assert sorted(p.name for p in output.iterdir()) == before
    assert len(json.loads((output / PARTS).read_text())) == 1


@pytest.mark.parametrize("inside", ["scores", "scores.rejects"])
def test_an_output_holding_the_input_is_refused(
    artifact: Artifact, scheduler: str, dataset: Path, tmp_path: Path, inside: str
) -> None:
    """Scoring files of an earlier dataset into that dataset (or its rejects) would replace
    them while they are read: refused, even though the folder is one this command wrote."""
    output = tmp_path / "scores"
    score_dataset(artifact, dataset, output, chunk_rows=1000, scheduler=scheduler)
    source = next((tmp_path / inside).glob("part-*.parquet"))
    with pytest.raises(TableError, match="would hold or replace the input"):
        score_dataset(artifact, source, output, chunk_rows=1000, scheduler=scheduler)
    assert source.is_file()


def test_an_input_named_twice_is_scored_once(
    artifact: Artifact, scheduler: str, dataset: Path, tmp_path: Path
) -> None:
    (dataset / "year=2007" / "again.parquet").symlink_to(dataset / "year=2007" / "a.parquet")
    summary = score_dataset(
        artifact, dataset / "year=2007", tmp_path / "scores", chunk_rows=1000, scheduler=scheduler
    )
    assert summary.input_rows == 150


def test_an_artifact_changed_since_the_run_started_is_refused(
    artifact: Artifact, scheduler: str, dataset: Path, tmp_path: Path
) -> None:
    """Workers load the artifact from its path: if another model is there now than the one
    the run started with, no task scores with it."""
    moved = tmp_path / "model"
    shutil.copytree(artifact.path, moved)
    started_with = load_artifact(moved)
    other = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    save_result(other, moved)  # the same config, saved again: another manifest
    output = tmp_path / "scores"
    with pytest.raises(ArtifactError, match="the artifact changed since the run started"):
        score_dataset(started_with, dataset, output, chunk_rows=1000, scheduler=scheduler)
    assert not output.exists()


def _staging_of(output: Path, host: str, pid: int) -> Path:
    staging = output.with_name(f".{output.name}.partial-{host}-{pid}-0a0b0c0d")
    (staging / "out").mkdir(parents=True)
    return staging


def test_a_second_run_to_the_same_output_is_refused(
    artifact: Artifact, scheduler: str, dataset: Path, tmp_path: Path
) -> None:
    """While a process of this host writes OUTPUT (its staging folder is there and it runs),
    another run to it is refused; a dead process's staging folder is removed, another
    host's is left alone."""
    output = tmp_path / "scores"
    host = socket.gethostname().replace("-", "_")
    running = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        live = _staging_of(output, host, running.pid)
        with pytest.raises(
            TableError, match=rf"another run \(process {running.pid}\) is writing it"
        ):
            score_dataset(artifact, dataset, output, chunk_rows=1000, scheduler=scheduler)
        assert not output.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["penguins", live.name])
    finally:
        running.communicate(b"")
    dead = live  # its process has ended now
    elsewhere = _staging_of(output, "another_host", os.getpid())
    score_dataset(artifact, dataset, output, chunk_rows=1000, scheduler=scheduler)
    assert not dead.exists()
    assert elsewhere.is_dir()


@pytest.mark.parametrize("inside", [".", "scores", "sub/scores"])
def test_an_output_inside_the_artifact_folder_is_refused(
    artifact: Artifact, dataset: Path, tmp_path: Path, inside: str
) -> None:
    """Refused before a cluster starts or anything is written: the artifact would hold files
    its manifest does not list, and be refused when loaded."""
    folder = Path(shutil.copytree(artifact.path, tmp_path / "artifact"))
    copy = load_artifact(folder)
    before = sorted(p.name for p in folder.iterdir())
    output = folder / inside
    with pytest.raises(TableError, match="the output path is inside the artifact folder"):
        score_dataset(copy, dataset, output, chunk_rows=1000, workers=1)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "penguins"]
    load_artifact(folder)


def test_rows_without_a_finite_prediction_are_rejects(scheduler: str, tmp_path: Path) -> None:
    """The tasks score each file with the local engine: a row the model gives no finite
    prediction for (a huge value of a feature without bounds, through a linear model) is a
    reject with its reason, never an inf in a part."""
    spec_text = (ROOT / "configs" / "penguins_body_mass.features.toml").read_text()
    spec = tmp_path / "unbounded.features.toml"
    spec.write_text(spec_text.replace("min = 150.0\nmax = 260.0\n", ""))
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_body_mass.toml")
    unbounded = load_artifact(
        save_result(train(config.model_copy(update={"spec": spec})), tmp_path / "mass")
    )
    inputs = tmp_path / "in"
    inputs.mkdir()
    rows = PENGUINS.dropna().head(6).copy()
    rows.loc[rows.index[[1, 4]], "flipper_length_mm"] = [1.7e308, -1.7e308]
    rows.iloc[:3].to_parquet(inputs / "a.parquet", index=False)
    rows.iloc[3:].to_parquet(inputs / "b.parquet", index=False)
    summary = score_dataset(
        unbounded, inputs, tmp_path / "scores", chunk_rows=1000, scheduler=scheduler
    )
    assert (summary.input_rows, summary.scored_rows, summary.rejected_rows) == (6, 4, 2)
    parts = json.loads((tmp_path / "scores" / PARTS).read_text())
    for part in parts:
        scored = pd.read_parquet(tmp_path / "scores" / part["part"])
        assert scored["row"].tolist() == [0, 2]
        assert scored["prediction"].abs().max() < 10_000
        assert summary.rejects is not None
        rejected = pd.read_parquet(summary.rejects / part["rejects"])
        assert rejected["row"].tolist() == [1]
        assert rejected["reasons"].str.contains("prediction is not a finite number").all()


@pytest.mark.parametrize("inside", [".", "sub/scores"])
def test_an_output_inside_another_artifact_folder_is_refused(
    artifact: Artifact, dataset: Path, tmp_path: Path, inside: str
) -> None:
    """Any artifact's folder, not only the one in use: it would be refused when loaded."""
    other = Path(shutil.copytree(artifact.path, tmp_path / "other"))
    before = sorted(p.name for p in other.iterdir())
    with pytest.raises(TableError, match="the output path is inside the artifact folder"):
        score_dataset(artifact, dataset, other / inside, chunk_rows=1000, workers=1)
    assert sorted(p.name for p in other.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "penguins"]
    load_artifact(other)
