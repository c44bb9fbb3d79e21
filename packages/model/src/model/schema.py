"""JSON Schema and Markdown reference of the training config file (`model schema`).

Both come from :class:`model.config.TrainConfig` (through :func:`features.json_schema`), so
they cannot drift from the code; the committed copies are
``schemas/training-config.schema.json`` and ``docs/config-reference.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features import json_schema, json_schema_text, markdown_reference, write_text
from model.config import TrainConfig
from model.exceptions import ModelError


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a training config file."""
    return json_schema(TrainConfig)


def config_reference() -> str:
    """``docs/config-reference.md``: every training config field, from :func:`config_schema`."""
    return markdown_reference(
        config_schema(), title="Training config reference", command="model schema"
    )


def write_schema(*, markdown: bool, output: Path | None) -> None:
    """The schema (or, with ``markdown``, the reference) to ``output``, or to stdout."""
    text = config_reference() if markdown else json_schema_text(TrainConfig)
    try:
        write_text(text, output)
    except OSError as error:
        msg = f"{output}: cannot write: {error.strerror or error}"
        raise ModelError(msg) from None
