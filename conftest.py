"""Hypothesis in every test run (each package's and the integration tests): one seed per run,
printed, so that CI explores new examples each time and any failure reproduces locally.

Hypothesis loads its ``ci`` profile under ``CI=true`` (no example database, no deadline), which
also derandomizes: every CI run would try the same examples. Here the profile stays, but the
examples come from a seed chosen per run (``HYPOTHESIS_SEED``, or ``--hypothesis-seed``, reuses
one), printed in the header and again after a failure.
"""

import os
import secrets

import pytest
from hypothesis import settings

SEED_VARIABLE = "HYPOTHESIS_SEED"


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own plugin reads the seed option
def pytest_configure(config: pytest.Config) -> None:
    if settings.default.derandomize:
        settings.register_profile("explore", settings.default, derandomize=False)
        settings.load_profile("explore")
    if config.getoption("--hypothesis-seed") is None:
        seed = os.environ.get(SEED_VARIABLE) or str(secrets.randbelow(2**32))
        config.option.hypothesis_seed = seed


def _reproduce(config: pytest.Config) -> str:
    seed = config.getoption("--hypothesis-seed")
    return f"hypothesis seed {seed}: {SEED_VARIABLE}={seed} or --hypothesis-seed={seed} repeats it"


def pytest_report_header(config: pytest.Config) -> str:
    return _reproduce(config)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    if exitstatus == pytest.ExitCode.TESTS_FAILED:
        terminalreporter.write_line(_reproduce(config))
