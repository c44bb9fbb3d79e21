"""The input contract of a model: one feature spec, and everything derived from it.

>>> from features import FeatureSpec, record_model, validate_frame, build_preprocessor

This module is the package's public API (``__all__``), with ``features.testing`` (helpers for
tests and benchmarks); every other submodule is internal, which ``lint-imports`` enforces.

The parts that need pandas or scikit-learn (validation, preprocessing, transformers) are
imported on first use, so a process that only reads specs, builds record models and runs the
compiled preprocessing (a serving process) starts without them.
"""

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from features.compiled import Columns, CompiledPreprocessor, frame_columns
from features.exceptions import CompileError, SpecError
from features.records import record_model
from features.reference import markdown_reference
from features.schema import json_schema, json_schema_text, write_text
from features.spec import (
    NULL_TEXT,
    BooleanColumn,
    CategoricalColumn,
    Column,
    FeatureSpec,
    NumericColumn,
    Ratio,
    format_errors,
    read_toml,
)

if TYPE_CHECKING:
    from features.preprocessing import build_preprocessor, compile_preprocessor
    from features.transformers import QuantileClipper, RatioFeatures
    from features.validation import ValidationReport, ValidationResult, validate_frame

_LAZY = {
    "build_preprocessor": "features.preprocessing",
    "compile_preprocessor": "features.preprocessing",
    "QuantileClipper": "features.transformers",
    "RatioFeatures": "features.transformers",
    "ValidationReport": "features.validation",
    "ValidationResult": "features.validation",
    "validate_frame": "features.validation",
}

__version__ = version("features")

__all__ = [
    "NULL_TEXT",
    "BooleanColumn",
    "CategoricalColumn",
    "Column",
    "Columns",
    "CompileError",
    "CompiledPreprocessor",
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
    "compile_preprocessor",
    "format_errors",
    "frame_columns",
    "json_schema",
    "json_schema_text",
    "markdown_reference",
    "read_toml",
    "record_model",
    "validate_frame",
    "write_text",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the named attribute is
    """Import the pandas/scikit-learn parts on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    msg = f"module 'features' has no attribute {name!r}"
    raise AttributeError(msg)
