"""Request and response models. The request is generated from the artifact's feature spec,
so ``/openapi.json`` documents each field with its type, nullability and constraints."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from features import FeatureSpec, InputError, ValidRows, record_model, validate

MAX_ERROR_ITEMS = 100
"""At most this many items in an error's ``detail``; ``total`` counts them all."""


def predict_request_model(spec: FeatureSpec, max_records: int) -> type[BaseModel]:
    """``{"records": [...]}``: 1 to ``max_records`` records (what /openapi.json documents)."""
    record = record_model(spec)
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )


Item = tuple[int | None, str | None, str]
"""One problem: the record index and the field it concerns (when it does), and what is wrong."""


@dataclass(frozen=True)
class Problems:
    """Why a request was refused: the HTTP status and error, the first
    :data:`MAX_ERROR_ITEMS` problems, how many there were, and how many records had one."""

    status: int
    error: str
    items: list[Item]
    total: int
    records: int = 0

    def message(self, record_word: str, field_word: str) -> str:
        """The refusal on one line, in a protocol's words: ``invalid input: record 0 field
        sex: category not allowed ...; ...`` (and how many problems in all, when more)."""
        reasons = "; ".join(
            " ".join(
                part
                for part in (
                    f"{record_word} {record}" if record is not None else "",
                    f"{field_word} {field}" if field is not None else "",
                )
                if part
            )
            + f": {message}"
            for record, field, message in self.items
        )
        more = f" ({self.total} problems in all)" if self.total > len(self.items) else ""
        return f"{self.error}: {reasons}{more}" if reasons else self.error


class RequestReader:
    """Parse and validate a ``/v1/predict`` body with the spec's one validator
    (:func:`features.validate`), with work bounded by the body's size, not by how wrong it is."""

    def __init__(self, spec: FeatureSpec, max_records: int) -> None:
        self.spec = spec
        self.model = predict_request_model(spec, max_records)
        self.record_name = record_model(spec).__name__  # its OpenAPI component
        self.max_records = max_records

    def read(self, body: bytes) -> ValidRows | Problems:
        """The validated records, or why they were refused."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            return Problems(400, "malformed JSON", [(None, None, f"Invalid JSON: {reason}")], 1)
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list) or not records or set(data) != {"records"}:
            message = f'expected {{"records": [...]}} with 1 to {self.max_records} records'
            return Problems(422, "invalid input", [(None, "records", message)], 1)
        return self.check(records)

    def check(self, records: list[Any]) -> ValidRows | Problems:
        """Validate records (JSON objects, as any protocol's request holds them)."""
        if len(records) > self.max_records:
            return Problems(413, f"too many records: at most {self.max_records} per request", [], 0)
        try:
            result = validate(self.spec, records, source="request")
        except InputError as error:
            refused = _refused(self.spec, records)
            return Problems(422, "invalid input", error.problems, error.total, refused)
        report = result.report
        if report.n_invalid:
            items: list[Item] = list(itertools.islice(report, MAX_ERROR_ITEMS))
            return Problems(422, "invalid input", items, len(report.rows), report.n_invalid)
        return result.valid


def _refused(spec: FeatureSpec, records: list[Any]) -> int:
    """How many records the whole-request check refused: not an object, a feature key
    missing, or (unless the spec ignores them) an unknown field. Counted here, because
    :class:`InputError` lists only the first problems."""
    required = set(spec.feature_names)
    known = spec.known_columns
    strict = spec.unknown_fields == "error"
    return sum(
        not isinstance(record, dict)
        or not required <= record.keys()
        or (strict and not record.keys() <= known)
        for record in records
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
