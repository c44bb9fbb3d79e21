"""Batch scoring on Dask: the local scorer, one task per input file, on many processes.

``serving score INPUT OUTPUT --engine dask [--scheduler ADDRESS]``. INPUT is a file, a folder
holding a (hive-partitioned or not) dataset of CSV or Parquet files, or a glob. Each file is
one task, and each task runs :func:`serving.batch.score_file`, the local engine, unchanged:
the same validation, the same output and rejects. Outputs are written into a hidden staging
folder beside OUTPUT and appear as ``OUTPUT/`` (one ``part-NNNNN.parquet`` per input file, and
``_parts.json`` saying which input file and how many rows each holds: with the ``row`` column
that is each row's identity) and ``OUTPUT.rejects/`` only when every task succeeded; a failed,
interrupted or killed run leaves nothing that looks complete.

Tasks carry the artifact's path and its manifest's sha256, never a pickled model: each worker
loads the artifact once through ``model``'s normal loading (hashes, audit, signature when a
public key is set), checks the manifest is the one the run started with, and reuses it. Without
``--scheduler`` a local cluster of one single-threaded worker process per core runs and is
closed after. Dask (``distributed``, which brings ``dask``) is the optional ``serving[dask]``
extra; the local engine needs none of it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import resource
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from model import Artifact, ArtifactError, load_artifact_or_default
from serving.batch import BatchSummary, score_file
from serving.exceptions import TableError
from serving.tabular import process_alive

INSTALL = (
    "the Dask engine needs Dask: install the serving[dask] extra "
    "(pip install 'serving[dask]', or uv sync --extra dask)"
)
PARTS = "_parts.json"
STOP = "_stop"
"""A file in the staging folder that tells every task to stop: another one failed."""
SUFFIXES = {".csv", ".parquet"}


def input_files(source: str | Path) -> list[Path]:
    """The files to score: the file itself, every CSV/Parquet file under a folder (hidden and
    ``_``-prefixed entries skipped, as Parquet datasets do), or the files a glob matches."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [
            p
            for p in sorted(path.rglob("*"))
            if p.is_file()
            and p.suffix.lower() in SUFFIXES
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        ]
    else:
        pattern = str(source)  # a glob as typed: absolute or relative, ** allowed
        found = sorted(Path(p) for p in glob.glob(pattern, recursive=True))  # noqa: PTH207
        found = [p for p in found if p.is_file() and p.suffix.lower() in SUFFIXES]
    if not found:
        msg = f"{source}: no CSV or Parquet file found (a file, a dataset folder or a glob)"
        raise TableError(msg)
    return found


def manifest_digest(artifact: Artifact) -> str:
    """The sha256 of the artifact's manifest (as loaded and checked): what a task checks its
    worker loaded."""
    return hashlib.sha256(artifact.manifest.model_dump_json().encode()).hexdigest()


_LOADED: dict[tuple[str, str], Artifact] = {}  # per worker process: loaded once, reused


def _worker_artifact(path: str, digest: str, public_key: str | None) -> Artifact:
    if (path, digest) not in _LOADED:
        import pyarrow as pa  # noqa: PLC0415

        pa.set_cpu_count(1)  # one core per worker process: the cluster is the parallelism
        artifact = load_artifact_or_default(path, public_key)
        if manifest_digest(artifact) != digest:
            msg = f"{path}: the artifact changed since the run started; run it again"
            raise ArtifactError(msg)
        _LOADED[path, digest] = artifact
    return _LOADED[path, digest]


@dataclass(frozen=True)
class Part:
    """What one task did."""

    source: str
    part: str
    input_rows: int
    scored_rows: int
    rejected_rows: int
    rejects: str | None
    peak_rss_mib: float


class Stopped(Exception):  # noqa: N818 - what happened, not an error of its own
    """A task stopped because another task of the run failed."""


def score_part(
    source: str,
    output: str,
    *,
    artifact: str,
    digest: str,
    public_key: str | None,
    chunk_rows: int,
    keep: Sequence[str],
) -> Part:
    """One task: score one input file with the local engine (runs on a worker). It stops,
    before it starts and between chunks, once the run's staging folder holds :data:`STOP`."""
    stop = Path(output).parent.parent / STOP

    def go_on(_rows: int) -> None:
        if stop.exists():
            msg = f"{source}: stopped, another file of the run failed"
            raise Stopped(msg)

    go_on(0)
    summary = score_file(
        _worker_artifact(artifact, digest, public_key),
        Path(source),
        Path(output),
        chunk_rows=chunk_rows,
        keep=keep,
        progress=go_on,
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return Part(
        source,
        Path(output).name,
        summary.input_rows,
        summary.scored_rows,
        summary.rejected_rows,
        None if summary.rejects is None else summary.rejects.name,
        peak,
    )


def rejects_dir(output: Path) -> Path:
    """``scores/`` -> ``scores.rejects/``, beside it."""
    return output.with_name(f"{output.name}.rejects")


def _check_outputs(output: Path, files: list[Path]) -> None:
    """Refuse an output that is an input, a file, or a folder holding anything but an earlier
    dataset of this command."""
    for target in (output, rejects_dir(output)):
        if target.exists() and not target.is_dir():
            msg = f"{target}: exists and is not a folder; the Dask engine writes a dataset folder"
            raise TableError(msg)
        if target.is_dir() and not (target / PARTS).is_file() and any(target.iterdir()):
            msg = f"{target}: exists and is not a dataset this command wrote; not replacing it"
            raise TableError(msg)
        if any(f.is_relative_to(target.resolve()) for f in files):
            msg = f"{target}: would hold or replace the input; choose another output"
            raise TableError(msg)


def _reclaim(output: Path) -> None:
    """Remove the staging folders of earlier runs to ``output`` whose process is gone (a
    killed run's leftovers)."""
    for stale in output.parent.glob(f".{glob.escape(output.name)}.partial-*"):
        pid = stale.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


@dataclass(frozen=True)
class DaskSummary(BatchSummary):
    """A Dask run's totals, and the peak memory of each worker process."""

    peak_rss_mib: tuple[float, ...] = ()


def score_dataset(
    artifact: Artifact,
    source: str | Path,
    output: Path,
    *,
    scheduler: str | None = None,
    public_key: Path | None = None,
    chunk_rows: int,
    keep: Sequence[str] = (),
    workers: int | None = None,
) -> DaskSummary:
    """Score every input file on Dask into the dataset ``output`` (see the module docstring)."""
    try:
        from distributed import Client, LocalCluster, wait  # noqa: PLC0415 - the optional extra
        from distributed.scheduler import KilledWorker  # noqa: PLC0415
    except ImportError:
        raise TableError(INSTALL) from None
    files = [path.resolve() for path in input_files(source)]  # workers may run elsewhere
    output = output.resolve()
    _check_outputs(output, files)
    _reclaim(output)
    started = time.perf_counter()
    staging = output.with_name(f".{output.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    (staging / "out").mkdir(parents=True)
    (staging / "rejects").mkdir()
    digest = manifest_digest(artifact)
    key = None if public_key is None else str(public_key.resolve())
    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
        with Client(scheduler or cluster) as client:  # type: ignore[no-untyped-call]
            futures = [
                client.submit(
                    score_part,
                    str(path),
                    str(staging / "out" / f"part-{index:05d}.parquet"),
                    artifact=str(artifact.path.resolve()),
                    digest=digest,
                    public_key=key,
                    chunk_rows=chunk_rows,
                    keep=list(keep),
                    key=f"score-{index:05d}-{digest[:8]}-{staging.name}",
                    pure=False,
                )
                for index, path in enumerate(files)
            ]
            try:
                parts: list[Part] = client.gather(futures)  # the first failure is raised here
            except BaseException:
                # Tasks still running would write into the staging folder removed below: tell
                # them to stop and wait until none runs (a lost scheduler: nothing to wait for).
                (staging / STOP).touch()
                if client.status == "running":
                    with contextlib.suppress(Exception):
                        wait(futures)
                raise
        return _publish(parts, staging, output, started)
    except (OSError, TimeoutError, KilledWorker) as error:  # a scheduler or a worker lost
        msg = f"the Dask run failed, nothing was written: {type(error).__name__}: {error}"
        raise TableError(msg) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if cluster is not None:
            cluster.close()


def _publish(parts: list[Part], staging: Path, output: Path, started: float) -> DaskSummary:
    """Move the finished parts into place: OUTPUT/ and OUTPUT.rejects/, replacing an earlier
    dataset of this command, each in one rename."""
    for part in parts:
        if part.rejects is not None:
            (staging / "out" / part.rejects).rename(staging / "rejects" / part.rejects)
    listing = [part.__dict__ for part in parts]
    (staging / "out" / PARTS).write_text(json.dumps(listing, indent=1) + "\n")
    rejected = sum(p.rejected_rows for p in parts)
    if rejected:
        (staging / "rejects" / PARTS).write_text(json.dumps(listing, indent=1) + "\n")
    for built, target in ((staging / "out", output), (staging / "rejects", rejects_dir(output))):
        if target.exists():
            shutil.rmtree(target)
        if built.name == "out" or rejected:
            built.rename(target)
    return DaskSummary(
        input_rows=sum(p.input_rows for p in parts),
        scored_rows=sum(p.scored_rows for p in parts),
        rejected_rows=rejected,
        output=output,
        rejects=rejects_dir(output) if rejected else None,
        seconds=time.perf_counter() - started,
        peak_rss_mib=tuple(sorted({round(p.peak_rss_mib, 1) for p in parts})),
    )
