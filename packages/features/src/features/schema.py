"""JSON Schemas of config files (the feature spec's here, the training config's in ``model``),
for editors (completion, checking) and for the Markdown references.

A schema is pydantic's, normalised so that every supported pydantic version writes the same
text: the committed copies (``schemas/*.schema.json``) are compared with it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from features.reference import markdown_reference
from features.spec import FeatureSpec

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema (draft 2020-12, as pydantic writes it), normalised."""
    normalised: dict[str, Any] = _normalise(model.model_json_schema())
    return normalised


def _normalise(node: Any) -> Any:  # noqa: ANN401 - any JSON value
    """Older pydantic repeats a ``const`` as a one-value ``enum`` and writes a number's bounds
    as floats; newer writes them as given. One spelling: no repeat, float bounds."""
    if isinstance(node, list):
        return [_normalise(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _normalise(value) for key, value in node.items()}
    if "const" in out and out.get("enum") == [out["const"]]:
        del out["enum"]
    if out.get("type") == "number":
        out.update({key: float(out[key]) for key in _BOUNDS if key in out})
    return out


def json_schema_text(model: type[BaseModel]) -> str:
    """:func:`json_schema` as a file's text: indented, UTF-8, ending in a newline."""
    return json.dumps(json_schema(model), indent=2, ensure_ascii=False) + "\n"


def spec_schema() -> dict[str, Any]:
    """The JSON Schema of a feature spec file."""
    return json_schema(FeatureSpec)


def spec_reference() -> str:
    """``docs/spec-reference.md``: every feature spec field, from :func:`spec_schema`."""
    return markdown_reference(
        spec_schema(), title="Feature spec reference", command="features schema"
    )


def write_schema(*, markdown: bool, output: Path | None) -> None:
    """The schema (or, with ``markdown``, the reference) to ``output``, or to stdout."""
    write_text(spec_reference() if markdown else json_schema_text(FeatureSpec), output)


def write_text(text: str, output: Path | None) -> None:
    """``text`` to the file ``output`` (its folder made), or to stdout when it is None."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
