"""Request and response models. The request is generated from the artifact's feature spec,
so ``/openapi.json`` documents each field with its type, nullability and constraints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from features import FeatureSpec, record_model


def predict_request_model(spec: FeatureSpec, max_records: int) -> type[BaseModel]:
    """``{"records": [...]}``: 1 to ``max_records`` records, unknown fields refused."""
    record = record_model(spec, extra="forbid")
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )


class PredictionItem(BaseModel):
    """One record's prediction; ``probabilities`` by class for classifiers, else null."""

    prediction: str | float
    probabilities: dict[str, float] | None = None


class PredictResponse(BaseModel):
    """Predictions in input order, and the model that made them."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    predictions: list[PredictionItem]


class ErrorItem(BaseModel):
    """One problem: the record index and field it concerns, when it concerns one."""

    record: int | None = None
    field: str | None = None
    message: str


MAX_ERROR_ITEMS = 100
"""At most this many items in an error's ``detail``; ``total`` counts them all."""


class ErrorResponse(BaseModel):
    """Every error answer of the service (4xx and 5xx)."""

    error: str
    detail: list[ErrorItem] = Field(default=[], max_length=MAX_ERROR_ITEMS)
    total: int = Field(0, description="problems found; detail lists the first 100")


class Metadata(BaseModel):
    """What is being served."""

    model_config = ConfigDict(protected_namespaces=())

    model: str
    version: str
    task: str
    target: str
    classes: list[str] | None
    created_at: str
    git_commit: str | None
    versions: dict[str, str]
    metrics: dict[str, float]
    features: list[dict[str, Any]]
    artifact_sha256: str
