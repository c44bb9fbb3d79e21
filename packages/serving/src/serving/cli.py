"""`serving` command: run the HTTP service, or score a file in batches.

Exit codes: 0 success, 1 an error the message explains (bad settings, an artifact refused, an
input refused), 2 bad usage, 4 `score` rejected more than ``--max-reject-share`` of the rows
(both files are written), 5 `serve` could not listen on its address (in use, or not allowed),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); an interrupted `score` leaves no output or
partial file.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from features import InputError, SpecError
from model import ModelError
from serving.exceptions import StartupError, TableError
from serving.settings import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_REJECT_SHARE, Settings

EXIT_TOO_MANY_REJECTS = 4
EXIT_CANNOT_LISTEN = 5

# No markup or highlighting: paths, names and messages are printed exactly as they are.
out = Console(soft_wrap=True, markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def _settings(args: argparse.Namespace) -> Settings:
    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    return Settings(**given)


def _serve(args: argparse.Namespace) -> int:
    from serving.app import load  # noqa: PLC0415 - keeps `serving --help` fast
    from serving.observability import prepare_multiprocess_dir  # noqa: PLC0415
    from serving.server import serve  # noqa: PLC0415

    given = _settings(args)
    prepare_multiprocess_dir()  # before any worker writes its metrics there
    artifact = load(given)  # fail here, with a message, rather than inside a worker
    # Every worker loads the folder verified here, and refuses it unless it is still the same.
    settings = given.model_copy(
        update={"artifact": artifact.path, "artifact_digest": artifact.digest}
    )
    err.print(
        f"serving {artifact.name} {artifact.version} on http://{settings.host}:{settings.port}"
    )
    try:
        serve(settings)
    except SystemExit as stop:  # uvicorn exits 1 or 3 when it cannot bind its socket
        if stop.code in {0, None}:
            return 0
        load(settings)  # or when the worker refused the artifact: then that is the error
        _fail(
            f"could not serve on http://{settings.host}:{settings.port}: the address is in use "
            "or not allowed (uvicorn's message is above)"
        )
        return EXIT_CANNOT_LISTEN
    load(settings)  # uvicorn stops every worker when one refuses the artifact: say why
    return 0


class TerminatedError(Exception):
    """A termination signal arrived; raised in the main thread so every output file's
    cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; no output was written")
        self.code = 128 + signum


def _stop(signum: int, _: object) -> None:
    raise TerminatedError(signum)


def _score(args: argparse.Namespace) -> int:
    import pyarrow as pa  # noqa: PLC0415

    # pyarrow imports pandas (when installed) on first use and loses an exception raised
    # meanwhile: a SIGTERM arriving then was ignored, the run went on and succeeded. Let it
    # import it now, before the handler.
    pa.array([True]).to_numpy(zero_copy_only=False)
    previous = signal.signal(signal.SIGTERM, _stop)  # clean up partial files, as Ctrl-C does
    try:
        return _score_file(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _score_file(args: argparse.Namespace) -> int:
    from serving.app import load  # noqa: PLC0415
    from serving.batch import BatchSummary, score_file  # noqa: PLC0415 - pandas and pyarrow

    settings = _settings(args)
    artifact = load(settings)
    summary: BatchSummary
    if args.engine == "dask":
        from serving.dask_engine import score_dataset  # noqa: PLC0415 - the optional extra

        summary = score_dataset(
            artifact,
            args.input,
            args.output,
            scheduler=args.scheduler,
            public_key=settings.public_key,
            chunk_rows=args.chunk_rows,
            keep=args.keep,
        )
    elif args.scheduler is not None:
        _fail("--scheduler needs --engine dask")
        return 2
    elif not err.is_terminal:  # no progress display at all (older rich still prints a line)
        summary = score_file(
            artifact, args.input, args.output, chunk_rows=args.chunk_rows, keep=args.keep
        )
    else:
        columns = (
            SpinnerColumn(),
            TextColumn("scoring {task.description}", markup=False),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(str(args.input), total=None)
            summary = score_file(
                artifact,
                args.input,
                args.output,
                chunk_rows=args.chunk_rows,
                keep=args.keep,
                progress=lambda n: bar.advance(task, n),
            )
    out.print(summary.line())
    share = summary.rejected_rows / summary.input_rows if summary.input_rows else 0.0
    if share > args.max_reject_share:
        _fail(
            f"{summary.rejected_rows} of {summary.input_rows} rows rejected ({share:.1%} > "
            f"--max-reject-share {args.max_reject_share:.1%}); see {summary.rejects}"
        )
        return EXIT_TOO_MANY_REJECTS
    return 0


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        msg = f"expected a share between 0 and 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        msg = f"expected column names separated by commas, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return names


def _setting_flags(command: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """One flag per setting (``max_records`` is ``--max-records``), described by the
    settings themselves: a flag wins over its ``SERVING_*`` variable, which wins over the
    default; pydantic-settings checks the values either way."""
    for name in names:
        field = Settings.model_fields[name]
        default = "none" if field.default is None else field.default
        command.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            metavar=name.upper(),
            help=f"{field.description} (env SERVING_{name.upper()}; default {default})",
        )


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(prog="serving", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP prediction service")
    _setting_flags(serve, Settings.model_fields)
    serve.set_defaults(run=_serve)

    score = commands.add_parser("score", help="score a CSV or Parquet file into another")
    score.add_argument(
        "input",
        type=Path,
        help="CSV or Parquet file to score (with --engine dask: also a dataset folder or a glob)",
    )
    score.add_argument(
        "output",
        type=Path,
        help="CSV or Parquet file to write, by extension (with --engine dask: a dataset folder)",
    )
    _setting_flags(score, ["artifact", "public_key"])
    score.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows per chunk; bounds memory (default {DEFAULT_CHUNK_ROWS})",
    )
    score.add_argument(
        "--keep",
        type=_names,
        default=[],
        metavar="COLUMN[,COLUMN...]",
        help="input columns to copy into the output beside `row` (the spec's id column is "
        "copied anyway)",
    )
    score.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="local (default): this process; dask: one task per input file on a local cluster "
        "of one process per core, or on --scheduler (INPUT may then be a dataset folder or a "
        "glob, OUTPUT is a Parquet dataset folder); needs the serving[dask] extra",
    )
    score.add_argument(
        "--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://10.0.0.5:8786"
    )
    score.add_argument(
        "--max-reject-share",
        type=_share,
        default=DEFAULT_MAX_REJECT_SHARE,
        help="exit with code 4 when a larger share of the rows is rejected (0 to 1; default "
        f"{DEFAULT_MAX_REJECT_SHARE}); the output and rejects files are written either way",
    )
    score.set_defaults(run=_score)
    return root


def _fail(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", message))


def _one_line(error: InputError) -> str:
    """The refused input and its first problems on one line, as every error of the command
    is (a scheduled job's error is one log line)."""
    parts = []
    for record, field, message in error.problems[:10]:
        where = [f"record {record}"] if record is not None else []
        where += [f"column {field!r}"] if field is not None else []
        parts.append(f"{', '.join(where)}: {message}" if where else message)
    if error.total > len(parts):
        parts.append(f"... and {error.total - len(parts)} more")
    return f"{error.source}: input refused: {'; '.join(parts)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``serving`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)
        )
        _fail(f"invalid settings: {problems}")
    except InputError as error:
        _fail(_one_line(error))
    except (ModelError, SpecError, StartupError, TableError) as error:
        _fail(str(error))
    except TerminatedError as error:
        _fail(str(error))
        return error.code
    except KeyboardInterrupt:
        _fail("interrupted; no output was written")
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
