"""HTTP prediction service and streaming batch scorer for ``model`` artifacts."""

from importlib.metadata import version

__version__ = version("serving")

__all__ = ["__version__"]
