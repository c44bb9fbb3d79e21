"""The input contract of a model: one feature spec, and everything derived from it.

>>> from features import FeatureSpec, record_model, validate_frame, build_preprocessor
"""

from importlib.metadata import version

from features.exceptions import SpecError
from features.preprocessing import build_preprocessor
from features.records import record_model
from features.spec import (
    BooleanColumn,
    CategoricalColumn,
    Column,
    FeatureSpec,
    NumericColumn,
    Ratio,
)
from features.transformers import QuantileClipper, RatioFeatures
from features.validation import ValidationReport, ValidationResult, validate_frame

__version__ = version("features")

__all__ = [
    "BooleanColumn",
    "CategoricalColumn",
    "Column",
    "FeatureSpec",
    "NumericColumn",
    "QuantileClipper",
    "Ratio",
    "RatioFeatures",
    "SpecError",
    "ValidationReport",
    "ValidationResult",
    "__version__",
    "build_preprocessor",
    "record_model",
    "validate_frame",
]
