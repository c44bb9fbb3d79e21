"""`serving` command: run the HTTP service, or score a file in batches.

Exit codes: 0 success, 1 an error the message explains, 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from features import SpecError
from model import ModelError
from serving.exceptions import TableError
from serving.settings import DEFAULT_CHUNK_ROWS, Settings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings(args: argparse.Namespace) -> Settings:
    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    return Settings(**given)


def _serve(args: argparse.Namespace) -> int:
    from serving.app import load  # noqa: PLC0415 - keeps `serving --help` fast

    settings = _settings(args)
    artifact = load(settings)  # fail here, with a message, rather than inside a worker
    err.print(
        f"serving {artifact.name} {artifact.version} on http://{settings.host}:{settings.port}"
    )
    # Workers build their app from SERVING_* (the factory), so hand the settings down that way.
    for name, value in settings.model_dump(exclude_none=True).items():
        os.environ[f"SERVING_{name.upper()}"] = str(value)
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the service logs one JSON line per request itself
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    from serving.app import load  # noqa: PLC0415
    from serving.batch import score_file  # noqa: PLC0415 - pandas and pyarrow, for scoring only

    artifact = load(_settings(args))
    columns = (
        SpinnerColumn(),
        TextColumn("scoring {task.description}"),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=True) as bar:
        task = bar.add_task(str(args.input), total=None)
        summary = score_file(
            artifact,
            args.input,
            args.output,
            chunk_rows=args.chunk_rows,
            progress=lambda n: bar.advance(task, n),
        )
    out.print(summary.line(), highlight=False)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(prog="serving", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    artifact_help = "artifact directory (default: $SERVING_ARTIFACT, else the bundled model)"

    serve = commands.add_parser("serve", help="run the HTTP prediction service")
    serve.add_argument("--artifact", type=Path, help=artifact_help)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(run=_serve)

    score = commands.add_parser("score", help="score a CSV or Parquet file into another")
    score.add_argument("input", type=Path, help="CSV or Parquet file to score")
    score.add_argument("output", type=Path, help="CSV or Parquet file to write (by extension)")
    score.add_argument("--artifact", type=Path, help=artifact_help)
    score.add_argument(
        "--chunk-rows",
        type=int,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows per chunk; bounds memory (default {DEFAULT_CHUNK_ROWS})",
    )
    score.set_defaults(run=_score)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``serving`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ValidationError as error:
        err.print(f"[red]error:[/] invalid settings: {error}", highlight=False)
    except (ModelError, SpecError, TableError) as error:
        err.print(f"[red]error:[/] {error}", highlight=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
