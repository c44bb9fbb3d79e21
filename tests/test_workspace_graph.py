"""The members and their order come from the pyproject files (tools/workspace.py), so a new
member needs no list edited by hand."""

import shutil
import sys
from pathlib import Path

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import workspace


def test_members_and_order_are_the_workspace_s() -> None:
    assert sorted(workspace.members(ROOT)) == sorted(
        p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file()
    )
    assert workspace.order(ROOT) == ("features", "model", "serving")
    assert workspace.scripts(ROOT) == {
        "features": ["features"],
        "model": ["model"],
        "serving": ["serving"],
    }


def test_a_new_member_is_ordered_after_what_it_depends_on(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for name in ("features", "model", "serving"):
        shutil.copytree(
            ROOT / "packages" / name,
            tmp_path / "packages" / name,
            ignore=shutil.ignore_patterns("src", "tests"),
        )
    reports = tmp_path / "packages" / "reports"
    reports.mkdir()
    (reports / "pyproject.toml").write_text(
        '[project]\nname = "reports"\nversion = "0.1.0"\n'
        'dependencies = ["model>=0.1,<0.2", "numpy"]\n'
        '[project.scripts]\nreports = "reports.cli:main"\n'
    )
    order = workspace.order(tmp_path)
    assert order.index("reports") > order.index("model") > order.index("features")
    assert workspace.sibling_names("reports", tmp_path) == ["model"]
    assert workspace.scripts(tmp_path)["reports"] == ["reports"]
