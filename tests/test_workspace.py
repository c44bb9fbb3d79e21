"""Cross-package contract: the packages installed together agree on each other's versions."""

from importlib import metadata

import pytest
from packaging.requirements import Requirement

import features
import model
import serving

CHAIN = {"model": "features", "serving": "model"}


@pytest.mark.parametrize(("package", "sibling"), CHAIN.items())
def test_sibling_range_admits_installed_version(package: str, sibling: str) -> None:
    requirements = [Requirement(r) for r in metadata.requires(package) or []]
    (requirement,) = [r for r in requirements if r.name == sibling]
    assert str(requirement.specifier), f"{package} must pin a version range for {sibling}"
    assert requirement.specifier.contains(metadata.version(sibling))


def test_each_package_reports_its_version() -> None:
    for module in (features, model, serving):
        assert module.__version__ == metadata.version(module.__name__)
