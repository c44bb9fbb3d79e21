"""serving is the top of the stack: it gets model and features through its declared ranges."""

from pathlib import Path

from features.testing import locked_packages, undeclared_imports

SOURCE = Path(__file__).resolve().parents[1] / "src" / "serving"


def test_imports_only_what_it_declares() -> None:
    assert undeclared_imports("serving", SOURCE) == []


def test_package_env_has_the_whole_chain(workspace: Path) -> None:
    assert {"serving", "model", "features"} <= locked_packages("serving", workspace)
