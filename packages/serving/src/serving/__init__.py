"""The serving package."""

from importlib.metadata import version

__version__ = version("serving")

__all__ = ["__version__"]
