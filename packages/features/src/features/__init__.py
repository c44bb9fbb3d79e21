"""The input contract of a model: one feature spec, and everything derived from it.

>>> from features import FeatureSpec, read_table, validate, build_preprocessor
>>> spec = FeatureSpec.from_toml("configs/penguins_species.features.toml")  # doctest: +SKIP
>>> result = validate(spec, read_table(path, spec, target=True), target=True)  # doctest: +SKIP
>>> result.valid, result.report.summary()  # doctest: +SKIP

This module is the package's public API (``__all__``), with ``features.testing`` (helpers for
tests and benchmarks); every other submodule is internal, which ``lint-imports`` enforces.

The parts that need pyarrow or scikit-learn (file reading, preprocessing, transformers) are
imported on first use, so a process that only reads specs, validates JSON records and runs the
compiled preprocessing (a serving process) starts with NumPy and pydantic alone.
"""

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from features.cells import NULL_TEXT, PLAIN_NUMBER
from features.columns import (
    BooleanColumn,
    CategoricalColumn,
    Categories,
    Column,
    IntegerCategoricalColumn,
    NumericColumn,
)
from features.compiled import Columns, CompiledPreprocessor, json_numbers, json_texts
from features.exceptions import CompileError, InputError, SpecError
from features.records import edge_records, record_model
from features.reference import markdown_reference
from features.schema import json_schema, json_schema_text, write_text
from features.spec import FeatureSpec, Ratio, format_errors, read_toml
from features.validation import (
    ValidationReport,
    ValidationResult,
    ValidRows,
    repeated_columns,
    validate,
)

if TYPE_CHECKING:
    from features.preprocessing import build_preprocessor, compile_preprocessor
    from features.tables import check_file, file_format, iter_tables, read_table
    from features.transformers import QuantileClipper, RatioFeatures

_LAZY = {
    "build_preprocessor": "features.preprocessing",
    "compile_preprocessor": "features.preprocessing",
    "check_file": "features.tables",
    "file_format": "features.tables",
    "iter_tables": "features.tables",
    "read_table": "features.tables",
    "QuantileClipper": "features.transformers",
    "RatioFeatures": "features.transformers",
}

__version__ = version("features")

__all__ = [
    "NULL_TEXT",
    "PLAIN_NUMBER",
    "BooleanColumn",
    "CategoricalColumn",
    "Categories",
    "Column",
    "Columns",
    "CompileError",
    "CompiledPreprocessor",
    "FeatureSpec",
    "InputError",
    "IntegerCategoricalColumn",
    "NumericColumn",
    "QuantileClipper",
    "Ratio",
    "RatioFeatures",
    "SpecError",
    "ValidRows",
    "ValidationReport",
    "ValidationResult",
    "__version__",
    "build_preprocessor",
    "check_file",
    "compile_preprocessor",
    "edge_records",
    "file_format",
    "format_errors",
    "iter_tables",
    "json_numbers",
    "json_schema",
    "json_schema_text",
    "json_texts",
    "markdown_reference",
    "read_table",
    "read_toml",
    "record_model",
    "repeated_columns",
    "validate",
    "write_text",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the named attribute is
    """Import the pyarrow and scikit-learn parts on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    msg = f"module 'features' has no attribute {name!r}"
    raise AttributeError(msg)
