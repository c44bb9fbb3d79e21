"""Training, evaluation and a secure, versioned artifact for models built on ``features``.

>>> from model import load_artifact
>>> artifact = load_artifact("artifacts/penguins-body-mass")  # doctest: +SKIP
>>> artifact.predict(frame).predictions                      # doctest: +SKIP

This module is the package's public API (``__all__``), with ``model.testing`` (helpers for
tests); every other submodule is internal, which ``lint-imports`` enforces.

Loading verifies and audits every artifact before it builds anything (:mod:`model.store`,
:mod:`model.audit`): a loaded artifact is always an audited one. Training (scikit-learn,
SciPy) is imported on first use: loading an artifact with a compiled form, its audit included,
and predicting with it needs NumPy only, which keeps a serving process's start-up short.
"""

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from model.audit import TRUSTED_TYPES
from model.bundled import load_artifact_or_default, load_default
from model.compiled import CompiledLinear, CompiledPipeline
from model.exceptions import ArtifactError, ConfigError, DataError, ModelError, QualityGateError
from model.manifest import FORMAT_VERSION, Manifest
from model.predictor import Artifact, Prediction
from model.signing import sign_artifact
from model.store import inside_an_artifact, load_artifact
from model.trees import CompiledTrees

if TYPE_CHECKING:
    from model.config import Gate, TrainConfig
    from model.estimators import HistGradientBoosting, Linear, RandomForest
    from model.saving import save_result
    from model.training import TrainResult, build_pipeline, train

_LAZY = {
    "Gate": "model.config",
    "TrainConfig": "model.config",
    "HistGradientBoosting": "model.estimators",
    "Linear": "model.estimators",
    "RandomForest": "model.estimators",
    "save_result": "model.saving",
    "TrainResult": "model.training",
    "build_pipeline": "model.training",
    "train": "model.training",
}

__version__ = version("model")

__all__ = [
    "FORMAT_VERSION",
    "TRUSTED_TYPES",
    "Artifact",
    "ArtifactError",
    "CompiledLinear",
    "CompiledPipeline",
    "CompiledTrees",
    "ConfigError",
    "DataError",
    "Gate",
    "HistGradientBoosting",
    "Linear",
    "Manifest",
    "ModelError",
    "Prediction",
    "QualityGateError",
    "RandomForest",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "build_pipeline",
    "inside_an_artifact",
    "load_artifact",
    "load_artifact_or_default",
    "load_default",
    "save_result",
    "sign_artifact",
    "train",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the named attribute is
    """Import the training parts on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    msg = f"module 'model' has no attribute {name!r}"
    raise AttributeError(msg)
