"""tox plugin of this workspace (tox loads ``toxfile.py`` by itself): an env asked for by name
(``tox -e features-test-py312``) whose Python is missing stops with one line and exit code 3,
which no test failure gives; in a plain ``tox`` run such envs are skipped (or, with
``--skip-missing-interpreters false`` as in CI, fail)."""

from __future__ import annotations

import re
import subprocess
import sys

from tox.config.sets import EnvConfigSet
from tox.plugin import impl
from tox.session.state import State

EXIT_INTERPRETER_MISSING = 3
PYTHON_FACTOR = re.compile(r"(?:^|-)py3(\d+)$")


def _visible(version: str) -> bool:
    """Whether uv, as tox-uv uses it, finds CPython ``version`` without downloading one."""
    found = subprocess.run(
        [
            "uv",
            "python",
            "find",
            "--no-python-downloads",
            "--python-preference",
            "system",
            f"cpython{version}",
        ],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


@impl
def tox_add_env_config(env_conf: EnvConfigSet, state: State) -> None:
    """Stop at once, in one line, when an env named on the command line has no interpreter."""
    requested = state.conf.options.env
    if requested.is_all or requested.is_default_list or env_conf.name not in list(requested):
        return
    match = PYTHON_FACTOR.search(env_conf.name)
    if match is None:
        return
    version = f"3.{match.group(1)}"
    if not _visible(version):
        print(
            f"{env_conf.name}: Python {version} is not visible to uv: install it, or list it in "
            f"PYENV_VERSION (for example PYENV_VERSION=3.11.7:3.12.1:3.13.0); no test ran "
            f"(exit code {EXIT_INTERPRETER_MISSING})",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_INTERPRETER_MISSING)
