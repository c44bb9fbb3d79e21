"""model sits on features: it must not need, or pull in, serving's web stack."""

from pathlib import Path

from features.testing import locked_packages, undeclared_imports

SOURCE = Path(__file__).resolve().parents[1] / "src" / "model"


def test_imports_only_what_it_declares() -> None:
    assert undeclared_imports("model", SOURCE) == []


def test_package_env_has_features_and_nothing_of_serving(workspace: Path) -> None:
    installed = locked_packages("model", workspace)
    assert {"model", "features"} <= installed
    assert not installed & {"serving", "fastapi", "uvicorn", "starlette"}
