"""features is the bottom of the stack: it must not need, or pull in, model or serving."""

from pathlib import Path

from features.testing import locked_packages, undeclared_imports

SOURCE = Path(__file__).resolve().parents[1] / "src" / "features"


def test_imports_only_what_it_declares() -> None:
    assert undeclared_imports("features", SOURCE) == []


def test_package_env_has_nothing_of_model_or_serving(workspace: Path) -> None:
    installed = locked_packages("features", workspace)
    assert {"features", "scikit-learn", "pandas", "pydantic"} <= installed
    assert not installed & {"model", "serving", "skops", "fastapi", "uvicorn"}
