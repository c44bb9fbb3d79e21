"""Request and response models. The request is generated from the artifact's feature spec,
so ``/openapi.json`` documents each field with its type, nullability and constraints."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from features import FeatureSpec, record_model

MAX_ERROR_ITEMS = 100
"""At most this many items in an error's ``detail``; ``total`` counts them all."""


def predict_request_model(
    spec: FeatureSpec, max_records: int, extra: Literal["forbid", "ignore"] = "forbid"
) -> type[BaseModel]:
    """``{"records": [...]}``: 1 to ``max_records`` records, unknown fields refused."""
    record = record_model(spec, extra=extra)
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )


@dataclass
class Problems:
    """Why a request body was refused: the first :data:`MAX_ERROR_ITEMS` errors (pydantic's
    shape: ``loc``, ``msg``, ``type``), how many there were, and which records had one."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    records: set[int] = field(default_factory=set)

    def add(self, errors: list[dict[str, Any]]) -> None:
        """Count ``errors``; keep them while there is room."""
        self.total += len(errors)
        self.errors += errors[: MAX_ERROR_ITEMS - len(self.errors)]
        for error in errors:
            loc = error["loc"]
            if len(loc) > 1 and loc[0] == "records" and isinstance(loc[1], int):
                self.records.add(loc[1])


class RequestReader:
    """Parse and validate a ``/v1/predict`` body with work bounded by its size, not by how
    wrong it is: unknown fields (the one error that can repeat without limit in a record)
    are counted here, cheaply, and the records are validated without them."""

    def __init__(self, spec: FeatureSpec, max_records: int) -> None:
        self.model = predict_request_model(spec, max_records)  # what /openapi.json documents
        self._lenient = predict_request_model(spec, max_records, extra="ignore")
        self._fields = frozenset(spec.feature_names)
        self.max_records = max_records

    def read(self, body: bytes) -> BaseModel | Problems:
        """The validated request, or its problems (a ``json_invalid`` one for bad JSON)."""
        problems = Problems()
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            problems.add([{"loc": (), "msg": f"Invalid JSON: {reason}", "type": "json_invalid"}])
            return problems
        records = data.get("records") if isinstance(data, dict) else None
        if isinstance(records, list) and len(records) > self.max_records:  # nothing else counts
            problems.add([{"loc": ("records",), "msg": "too many records", "type": "too_long"}])
            return problems
        for index, record in enumerate(records if isinstance(records, list) else []):
            if not isinstance(record, dict):
                continue
            unknown = [name for name in record if name not in self._fields]
            problems.add(
                [
                    {"loc": ("records", index, name), "msg": EXTRA, "type": "extra_forbidden"}
                    for name in unknown[:MAX_ERROR_ITEMS]
                ]
            )
            problems.total += max(0, len(unknown) - MAX_ERROR_ITEMS)
        try:
            parsed = self._lenient.model_validate(data)
        except ValidationError as error:
            found = error.errors(include_url=False, include_context=False, include_input=False)
            problems.add([dict(e) for e in found])
            problems.errors.sort(key=_record_of)  # stable: each record's errors stay in order
            return problems
        return problems if problems.total else parsed


EXTRA = "Extra inputs are not permitted"


def _record_of(error: dict[str, Any]) -> int:
    loc = error["loc"]
    return loc[1] if len(loc) > 1 and isinstance(loc[1], int) else -1


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
