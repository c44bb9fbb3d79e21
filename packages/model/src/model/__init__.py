"""The model package."""

from importlib.metadata import version

__version__ = version("model")

__all__ = ["__version__"]
