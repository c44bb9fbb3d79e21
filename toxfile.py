"""tox plugin of this workspace (tox loads ``toxfile.py`` by itself).

- The per-package envs are generated from the workspace's members (``tools/workspace.py``), in
  dependency order: ``<pkg>-test``, ``<pkg>-lowest``, ``<pkg>-<extra>`` (the same tests with
  one of its extras installed: ``[tool.workspace] test-extras`` in its pyproject) and
  ``<pkg>-test-py3XX`` for each member, ahead of the envs ``tox.toml`` lists. Each env gets
  ``{member}`` (the package's name) and ``{member_dir}`` (its folder) to use in ``tox.toml``,
  and an extra's env that extra; a new member or extra needs no edit there.
- ``tox --affected REF`` runs only the envs that a change since the git ref ``REF`` affects
  (``tools/affected.py``).
- An env asked for by name (``tox -e features-test-py312``) whose Python is missing stops with
  one line and exit code 3, which no test failure gives; in a plain ``tox`` run such envs are
  skipped (or, with ``--skip-missing-interpreters false`` as in CI, fail).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tox.config.cli.parser import ToxParser
from tox.config.loader.memory import MemoryLoader
from tox.config.sets import ConfigSet, EnvConfigSet
from tox.config.types import EnvList
from tox.plugin import impl
from tox.session.state import State

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
import affected
import workspace

EXIT_INTERPRETER_MISSING = 3
PYTHON_FACTOR = re.compile(r"(?:^|-)py3(\d+)$")
ROOT = Path(__file__).resolve().parent


@impl
def tox_add_option(parser: ToxParser) -> None:
    """``--affected REF``."""
    parser.add_argument(
        "--affected",
        metavar="REF",
        default="",
        help="run only the envs that the changes since the git ref REF affect (the packages "
        "changed, lock-aware, and every package depending on them); see tools/affected.py",
    )


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    """``env_list``: the generated per-package envs, then tox.toml's; with ``--affected REF``,
    only those of them that the changes since REF affect (run as a plain ``tox`` run is, so
    a missing interpreter is skipped, not an error)."""
    ref = getattr(state.conf.options, "affected", "")
    selected = None
    if ref:
        try:
            selected = affected.envs(ref)
        except affected.AffectedError as error:
            print(f"--affected {ref}: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        if not selected:
            print(f"--affected {ref}: nothing changed since {ref}, no env to run", file=sys.stderr)
            raise SystemExit(0)
        print(f"--affected {ref}: {', '.join(selected)}", file=sys.stderr)

    def generated(listed: EnvList) -> EnvList:
        every = [*workspace.package_envs(), *listed.envs]
        return EnvList(every if selected is None else [e for e in every if e in selected])

    for definition in core_conf.get_configs():
        if "env_list" in definition.keys:
            definition.post_process = generated  # type: ignore[attr-defined]


def _visible(version: str) -> bool:
    """Whether uv, as tox-uv uses it, finds CPython ``version`` without downloading one."""
    try:
        from uv import find_uv_bin  # noqa: PLC0415 - tox-uv's own uv, when installed with it

        uv = find_uv_bin()
    except (ImportError, FileNotFoundError):
        uv = "uv"
    found = subprocess.run(
        [
            uv,
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
    """``{member}``/``{member_dir}`` for every env, and its extra for a ``<pkg>-<extra>`` env
    (uv sync --extra); stop at once, in one line, when an env named on the command line has
    no interpreter."""
    member = workspace.member_of_env(env_conf.name or "") or ""
    extra = workspace.extra_of_env(env_conf.name or "")
    if extra:  # ahead of tox.toml's loaders: this env's extras and description
        description = f"{member} tests with its {extra} extra installed"
        env_conf.loaders.insert(0, MemoryLoader(extras=[extra], description=description))
    env_conf.add_config(
        keys=["member"], of_type=str, default=member, desc="the workspace member this env tests"
    )
    env_conf.add_config(
        keys=["member_dir"],
        of_type=str,
        default=str(workspace.members(ROOT)[member]) if member else "",
        desc="the member's folder",
    )
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
