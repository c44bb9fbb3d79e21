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
import json
import os
import resource
import secrets
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from model import Artifact, ArtifactError, load_artifact_or_default
from serving.batch import BatchSummary, check_outside, score_file
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


_LOADED: dict[tuple[str, str], Artifact] = {}  # per worker process: loaded once, reused


def _worker_artifact(path: str, digest: str, public_key: str | None) -> Artifact:
    if (path, digest) not in _LOADED:
        import pyarrow as pa  # noqa: PLC0415

        pa.set_cpu_count(1)  # one core per worker process: the cluster is the parallelism
        artifact = load_artifact_or_default(path, public_key)
        if artifact.digest != digest:  # the manifest's sha256: what the run verified
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


def _written(target: Path) -> set[str]:
    """The files an earlier run of this command wrote at ``target`` (none when it does not
    exist), read from its listing; refuse a target holding anything else."""
    if not target.exists():
        return set()
    if not target.is_dir():
        msg = f"{target}: exists and is not a folder; the Dask engine writes a dataset folder"
        raise TableError(msg)
    present = {entry.name for entry in target.iterdir()}
    if not present:
        return set()
    try:
        listing = json.loads((target / PARTS).read_text())
        names = {PARTS} | {p[key] for p in listing for key in ("part", "rejects") if p[key]}
    except (OSError, ValueError, TypeError, KeyError):
        names = set()
    if not names:
        msg = f"{target}: exists and is not a dataset this command wrote; not replacing it"
        raise TableError(msg)
    foreign = sorted(present - names)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        msg = f"{target}: holds files this command did not write ({shown}); not replacing it"
        raise TableError(msg)
    return names & present


def _check_outputs(output: Path, files: list[Path]) -> dict[Path, set[str]]:
    """Refuse an output that holds or is an input, a file, or a folder holding anything but an
    earlier dataset of this command; the files of that earlier dataset, by target."""
    written = {}
    for target in (output, rejects_dir(output)):
        if any(f.is_relative_to(target) for f in files):
            msg = f"{target}: would hold or replace the input; choose another output"
            raise TableError(msg)
        written[target] = _written(target)
    return written


def _staging(output: Path) -> Path:
    """A new staging folder beside ``output``, ``.<name>.partial-<host>-<pid>-<random>``. The
    earlier ones of this host whose process is gone (a killed run's) are removed; while one
    whose process runs exists, another run is writing ``output``: refused."""
    host = socket.gethostname().replace("-", "_")
    staging = output.with_name(
        f".{output.name}.partial-{host}-{os.getpid()}-{secrets.token_hex(4)}"
    )
    (staging / "out").mkdir(parents=True)
    (staging / "rejects").mkdir()
    for other in output.parent.glob(f".{glob.escape(output.name)}.partial-*"):
        owner, pid, *_ = [*other.name.rsplit(".partial-", 1)[1].rsplit("-", 2), "", ""]
        if other == staging or owner != host or not pid.isdigit() or not other.is_dir():
            continue  # another host's run (or not a staging folder): not ours to remove
        if process_alive(int(pid)):
            shutil.rmtree(staging)
            msg = f"{output}: another run (process {pid}) is writing it; wait for it to finish"
            raise TableError(msg)
        shutil.rmtree(other, ignore_errors=True)
    return staging


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
    # Absolute (workers may run elsewhere), each file once (a glob and a link may both name it).
    files = list(dict.fromkeys(path.resolve() for path in input_files(source)))
    output = output.resolve()
    check_outside(output=output, rejects=rejects_dir(output))
    written = _check_outputs(output, files)
    started = time.perf_counter()
    staging = _staging(output)
    digest = artifact.digest
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
                        wait(futures)  # type: ignore[no-untyped-call]
                raise
    except (OSError, TimeoutError, KilledWorker) as error:  # a scheduler or a worker lost
        msg = f"the Dask run failed, nothing was written: {type(error).__name__}: {error}"
        raise TableError(msg) from None
    else:
        return _publish(parts, staging, output, written, started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if cluster is not None:
            cluster.close()


def _publish(
    parts: list[Part], staging: Path, output: Path, written: dict[Path, set[str]], started: float
) -> DaskSummary:
    """Move the finished parts into place: OUTPUT/ and OUTPUT.rejects/, in place of the files
    an earlier dataset of this command wrote there (``written``), and nothing else."""
    for part in parts:
        if part.rejects is not None:
            (staging / "out" / part.rejects).rename(staging / "rejects" / part.rejects)
    listing = json.dumps([part.__dict__ for part in parts], indent=1) + "\n"
    rejected = sum(p.rejected_rows for p in parts)
    (staging / "out" / PARTS).write_text(listing)
    if rejected:
        (staging / "rejects" / PARTS).write_text(listing)
    for built, target in ((staging / "out", output), (staging / "rejects", rejects_dir(output))):
        _replace(built, target, written[target])
    return DaskSummary(
        input_rows=sum(p.input_rows for p in parts),
        scored_rows=sum(p.scored_rows for p in parts),
        rejected_rows=rejected,
        output=output,
        rejects=rejects_dir(output) if rejected else None,
        seconds=time.perf_counter() - started,
        peak_rss_mib=tuple(sorted({round(p.peak_rss_mib, 1) for p in parts})),
    )


def _replace(built: Path, target: Path, earlier: set[str]) -> None:
    """Put the files of ``built`` at ``target``: in one rename when ``target`` is new; else
    the earlier dataset's listing goes first (it is visibly incomplete from then on), then its
    files, then the new files come in with their listing last. A failure on the way says so."""
    new = sorted(built.iterdir(), key=lambda path: path.name == PARTS)  # the listing last
    try:
        if not earlier:
            if new:
                built.rename(target)  # target is absent or an empty folder
            return
        for name in sorted(earlier, key=lambda name: name != PARTS):  # the listing first
            (target / name).unlink(missing_ok=True)
        for path in new:
            path.rename(target / path.name)
        if not new:
            target.rmdir()
    except OSError as error:
        msg = (
            f"{target}: replacing the earlier dataset failed midway ({error}); it holds part of "
            f"a dataset, without a complete {PARTS}: run the command again"
        )
        raise TableError(msg) from None
