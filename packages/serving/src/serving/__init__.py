"""HTTP prediction service and streaming batch scorer for ``model`` artifacts.

The commands (``serving serve``, ``serving score``) and the HTTP API are the service's main
contract. This module is its Python API (``__all__``), with ``serving.testing`` (the real
service in a child process, for tests); every other submodule is internal, which
``lint-imports`` enforces. The batch scorer (pandas, pyarrow) and the Dask engine (the
``serving[dask]`` extra) are imported on first use.
"""

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.batch import BatchSummary, score_file
    from serving.dask_engine import DaskSummary, score_dataset
    from serving.settings import DEFAULT_CHUNK_ROWS

_LAZY = {
    "BatchSummary": "serving.batch",
    "score_file": "serving.batch",
    "DaskSummary": "serving.dask_engine",
    "score_dataset": "serving.dask_engine",
    "DEFAULT_CHUNK_ROWS": "serving.settings",
}

__version__ = version("serving")

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "BatchSummary",
    "DaskSummary",
    "__version__",
    "score_dataset",
    "score_file",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the named attribute is
    """Import the batch scorer on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    msg = f"module 'serving' has no attribute {name!r}"
    raise AttributeError(msg)
