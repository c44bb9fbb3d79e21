"""The pydantic model of one input record, derived from a feature spec (for APIs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, create_model

from features.spec import Column, FeatureSpec


def _annotation(column: Column) -> Any:  # noqa: ANN401 - a typing form, built at run time
    if column.kind == "numeric":
        return Annotated[float, Field(ge=column.min, le=column.max, allow_inf_nan=False)]
    if column.kind == "categorical":
        if column.allow_unknown:
            return StrictStr
        return Literal[tuple(column.categories)]
    return StrictBool


def record_model(
    spec: FeatureSpec, *, extra: Literal["forbid", "ignore"] = "forbid"
) -> type[BaseModel]:
    """Build the model of one record: a field per feature with the spec's type and constraints.

    Types are strict (no ``"1.5"`` for a number, no ``"yes"`` for a boolean), numbers must be
    finite and in range, closed categories are a ``Literal``, and a non-nullable feature is
    required. Unknown fields are rejected by default (``extra="forbid"``), so a misspelt
    optional field cannot silently become a null.
    """
    fields: dict[str, Any] = {}
    for column in spec.features:
        annotation = _annotation(column)
        if column.nullable:
            fields[column.name] = (annotation | None, Field(None, description=column.description))
        else:
            fields[column.name] = (annotation, Field(description=column.description))
    title = "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_"))
    return create_model(
        f"{title}Record",
        __config__=ConfigDict(extra=extra, strict=True, title=f"{title}Record"),
        **fields,
    )
