"""Training, evaluation and a secure, versioned artifact for models built on ``features``.

>>> from model import load_artifact
>>> artifact = load_artifact("artifacts/penguins-body-mass")  # doctest: +SKIP
>>> artifact.predict(frame).predictions                      # doctest: +SKIP
"""

from importlib.metadata import version

from model.artifact import (
    FORMAT_VERSION,
    TRUSTED_TYPES,
    Artifact,
    Manifest,
    Prediction,
    load_artifact,
    load_artifact_or_default,
    load_default,
)
from model.config import Gate, TrainConfig
from model.exceptions import ArtifactError, ConfigError, DataError, ModelError, QualityGateError
from model.saving import save_result
from model.training import TrainResult, build_pipeline, train

__version__ = version("model")

__all__ = [
    "FORMAT_VERSION",
    "TRUSTED_TYPES",
    "Artifact",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "Gate",
    "Manifest",
    "ModelError",
    "Prediction",
    "QualityGateError",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "build_pipeline",
    "load_artifact",
    "load_artifact_or_default",
    "load_default",
    "save_result",
    "train",
]
