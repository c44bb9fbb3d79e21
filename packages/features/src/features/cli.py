"""`features` command: the JSON Schema of the feature spec file, or its Markdown reference.

Exit codes: 0 success, 1 the output could not be written, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from features.schema import write_schema


def _schema(args: argparse.Namespace) -> int:
    write_schema(markdown=args.markdown, output=args.output)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(prog="features", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    schema = commands.add_parser(
        "schema", help="print the feature spec's JSON Schema (for editors) or its reference"
    )
    schema.add_argument(
        "--markdown", action="store_true", help="the Markdown reference instead of the schema"
    )
    schema.add_argument("--output", type=Path, help="write to this file (default: stdout)")
    schema.set_defaults(run=_schema)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``features`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except OSError as error:
        print(f"error: {args.output}: cannot write: {error.strerror or error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
