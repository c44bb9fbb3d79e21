"""The pydantic model of one input record, derived from a feature spec (for APIs and editors).

Its JSON Schema documents what a record may hold (each column kind's ``json_schema``), and
validating with it runs the one validator (:func:`features.validate`), so it cannot accept
what the batch scorer or training would refuse.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model, model_validator

from features.exceptions import InputError
from features.spec import FeatureSpec
from features.validation import validate


def record_model(spec: FeatureSpec) -> type[BaseModel]:
    """Build the model of one record: a required field per feature (``nullable`` says whether
    it may be null), plus the optional fields the spec names but the model does not use.

    Unknown fields follow the spec's ``unknown_fields``. Validation is
    :func:`features.validate`'s, on a one-record list: a failure raises pydantic's
    ``ValidationError`` with each problem's field and reason.
    """
    fields: dict[str, Any] = {
        column.name: (
            Annotated[Any, WithJsonSchema(column.json_schema())],
            Field(description=column.description),
        )
        for column in spec.features
    }
    used = set(spec.feature_names)
    for name in sorted(spec.known_columns - used):
        fields[name] = (Any, Field(None, description="Accepted and not used by the model."))
    title = "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_"))
    extra: Literal["forbid", "ignore"] = "forbid" if spec.unknown_fields == "error" else "ignore"

    def check(cls: type[BaseModel], data: Any) -> Any:  # noqa: ANN401 - a record
        try:
            report = validate(spec, [data], source="record").report
        except InputError as error:
            raise ValueError("; ".join(_describe(p) for p in error.problems)) from None
        if report.n_invalid:
            raise ValueError("; ".join(f"{column}: {reason}" for _, column, reason in report))
        return data

    return create_model(
        f"{title}Record",
        __config__=ConfigDict(extra=extra, title=f"{title}Record"),
        __validators__={"check": model_validator(mode="before")(check)},  # type: ignore[dict-item]
        **fields,
    )


def _describe(problem: tuple[int | None, str | None, str]) -> str:
    _, field, message = problem
    return f"{field}: {message}" if field else message


def edge_records(spec: FeatureSpec) -> list[dict[str, Any]]:
    """Valid records a model must handle: each column's sample value first, then that record
    with each nullable feature null in turn, with each open category given a value training
    never saw, and with every nullable feature null at once."""
    base = {column.name: column.sample() for column in spec.features}
    records = [base]
    for column in spec.features:
        if column.nullable:
            records.append({**base, column.name: None})
        if column.unseen() is not None:
            records.append({**base, column.name: column.unseen()})
    nullable = [c.name for c in spec.features if c.nullable]
    if len(nullable) > 1:
        records.append({**base, **dict.fromkeys(nullable)})
    return records
