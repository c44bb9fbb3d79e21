"""Request and response models. The request is generated from the artifact's feature spec,
so ``/openapi.json`` documents each field with its type, nullability and constraints."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from features import FeatureSpec, InputError, ValidRows, record_model, repeated_columns, validate

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

        def reason(record: int | None, field: str | None, message: str) -> str:
            where = " ".join(
                part
                for part in (
                    f"{record_word} {record}" if record is not None else "",
                    f"{field_word} {field}" if field is not None else "",
                )
                if part
            )
            return f"{where}: {message}" if where else message

        reasons = "; ".join(reason(*item) for item in self.items)
        more = f" ({self.total} problems in all)" if self.total > len(self.items) else ""
        return f"{self.error}: {reasons}{more}" if reasons else self.error


class RepeatedKeys(Exception):  # noqa: N818 - what the body holds, not an error of its own
    """A JSON body holding an object that names a key more than once: ``json`` would keep the
    last value silently (other parsers the first), so the body is ambiguous and refused."""

    def __init__(self, data: Any, found: list[tuple[dict[str, Any], dict[str, int]]]) -> None:  # noqa: ANN401 - parsed JSON
        super().__init__("a JSON object names a key more than once")
        self.data, self.found = data, found

    def problems(self, *keys: str) -> Problems:
        """The refusal (422 ``invalid input``): a key repeated in a record (an object of the
        list under the first of ``keys`` the top object holds) is that record's field, ``record
        0 field sex: appears 2 times``; one repeated anywhere else is named as a key."""
        data = self.data if type(self.data) is dict else {}
        records: list[Any] = next((data[k] for k in keys if type(data.get(k)) is list), [])
        index = {id(record): row for row, record in enumerate(records)}
        items: list[Item] = []
        for found, counts in self.found:
            row = index.get(id(found))
            for key, n in counts.items():
                if row is None:
                    items.append((None, None, f"key {key!r} appears {n} times in one JSON object"))
                else:
                    items.append((row, key, f"appears {n} times"))
        rows = {row for row, _, _ in items if row is not None}
        return Problems(422, "invalid input", items[:MAX_ERROR_ITEMS], len(items), len(rows))


def loads(body: bytes) -> Any:  # noqa: ANN401 - parsed JSON
    """``json.loads(body)``, refusing (:class:`RepeatedKeys`) an object that names a key twice.

    Every key of every object is followed by one ``:`` outside strings, and no other token holds
    one. So when the body holds exactly as many ``:`` as the objects near the top hold keys
    (:func:`_top_keys`, a walk of the records, not of their values), no key repeats anywhere:
    the usual request costs a byte count more than a plain parse. Otherwise (a ``:`` in a
    string, objects deeper down) a second parse that sees every object's pairs decides.
    """
    data = json.loads(body)
    if body.count(b":") == _top_keys(data):
        return data
    found: list[tuple[dict[str, Any], dict[str, int]]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        made = dict(items)
        if len(made) < len(items):
            counts = Counter(key for key, _ in items)
            found.append((made, {key: n for key, n in counts.items() if n > 1}))
        return made

    data = json.loads(body, object_pairs_hook=pairs)
    if found:
        raise RepeatedKeys(data, found)
    return data


def _top_keys(data: Any) -> int:  # noqa: ANN401 - parsed JSON
    """The keys of the top object, of the objects among its values and of the objects in lists
    among its values (records): at most the keys of all the body's objects, counted without
    visiting a record's values."""
    if type(data) is not dict:
        return 0
    total = len(data)
    for value in data.values():
        if type(value) is dict:
            total += len(value)
        elif type(value) is list:
            total += sum(len(item) for item in value if type(item) is dict)
    return total


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
            data = loads(body)
        except (ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            return Problems(400, "malformed JSON", [(None, None, f"Invalid JSON: {reason}")], 1)
        except RepeatedKeys as repeated:
            return repeated.problems("records")
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list) or not records or set(data) != {"records"}:
            message = f'expected {{"records": [...]}} with 1 to {self.max_records} records'
            return Problems(422, "invalid input", [(None, "records", message)], 1)
        return self.check(records)

    def check(self, records: list[Any], columns: Sequence[str] = ()) -> ValidRows | Problems:
        """Validate records (JSON objects, as any protocol's request holds them). ``columns``,
        the names a request listed its columns by (a CSV header, ``dataframe_split``'s
        ``columns``, V2's inputs), may repeat no spec column: the rule for files too
        (:func:`features.repeated_columns`)."""
        if len(records) > self.max_records:
            return Problems(413, f"too many records: at most {self.max_records} per request", [], 0)
        repeated: list[Item] = list(repeated_columns(self.spec, columns))
        if repeated:
            first = repeated[:MAX_ERROR_ITEMS]
            return Problems(422, "invalid input", first, len(repeated), len(records))
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
