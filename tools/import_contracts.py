"""The import contracts of the workspace, derived from its members, checked by import-linter.

    uv run python tools/import_contracts.py            # what `tox -e lint` runs
    uv run python tools/import_contracts.py --print    # the generated contracts (INI)

For each member: it imports no member it does not depend on (its declared dependencies,
directly or not), and other packages import only its public API (what its ``__init__`` exports,
plus its ``testing`` module). ``bench/`` is checked as an importer too.
"""

from __future__ import annotations

import argparse
import configparser
import io
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import workspace

IMPORTERS = ("bench",)  # non-member packages in the graph: they may import any public API


def contracts(root: Path = workspace.ROOT) -> str:
    """The import-linter configuration (INI) for the workspace at ``root``."""
    config = configparser.ConfigParser()
    names = workspace.order(root)
    config["importlinter"] = {"root_packages": _lines([*names, *IMPORTERS])}
    for name in names:
        others = [m for m in names if m not in workspace.closure(name, root)]
        if others:
            config[f"importlinter:contract:{name}-depends-only-on-its-dependencies"] = {
                "name": f"{name} imports no member it does not depend on ({', '.join(others)})",
                "type": "forbidden",
                "source_modules": name,
                "forbidden_modules": _lines(others),
            }
        config[f"importlinter:contract:{name}-public-api"] = {
            "name": f"{name}: other packages import only its public API",
            "type": "protected",
            "protected_modules": f"{name}.*",
            "allowed_importers": name,
            "ignore_imports": f"** -> {name}.testing",
            "unmatched_ignore_imports_alerting": "none",
        }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def _lines(values: Sequence[str]) -> str:
    return "".join(f"\n{v}" for v in values)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the contracts with ``lint-imports`` (or print them)."""
    parser = argparse.ArgumentParser(prog="import_contracts", description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the contracts, check nothing")
    args = parser.parse_args(argv)
    text = contracts()
    if args.print:
        print(text, end="")
        return 0
    with tempfile.TemporaryDirectory(prefix="import-contracts-") as tmp:
        config = Path(tmp) / ".importlinter"
        config.write_text(text)
        command = ["lint-imports", "--no-logo", "--no-cache", str(config)]
        return subprocess.run(command, cwd=workspace.ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
