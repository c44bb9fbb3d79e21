"""MLflow's scoring protocol, another door to the same input contract.

``POST /invocations`` takes what MLflow's pyfunc scoring server takes for a tabular model: JSON
with exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (and
an optional ``params``, accepted and not used: the model takes none), or ``text/csv`` with a
header. Every form becomes records that :func:`features.validate` checks, as ``/v1/predict``
does; the answer is ``{"predictions": [...]}`` (class names or values). A column named twice
(in a CSV header, ``dataframe_split``'s ``columns`` or, as a repeated key, in any JSON object)
is refused, as every door refuses it. Errors use MLflow's
shape and codes: ``{"error_code": "BAD_REQUEST", "message": ...}`` with 400, and a text/plain
415 for another content type. ``GET /ping`` (and ``/health``, which the service has) and
``GET /version`` answer as MLflow's do.
"""

import importlib.metadata
import io
import json
from typing import Any, NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from features import edge_records
from serving.door import Door
from serving.observability import STATE_KEY
from serving.schemas import Problems, RepeatedKeys, loads

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
REQUIRED = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    + "{"
    + ", ".join(f"'{f}'" for f in FORMATS)
    + "}"
)
CONTENT_TYPES = ["text/csv", "application/json"]


class MlflowError(Exception):
    """A refusal in MLflow's shape: an HTTP status, an error code and a message."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> bytes:
        """``{"error_code": ..., "message": ...}``."""
        return json.dumps({"error_code": self.code, "message": self.message}).encode()


def media_type(content_type: str | None) -> tuple[str, str | None]:
    """The media type, and why MLflow would refuse the header (415) or None."""
    parts = [p.strip() for p in (content_type or "").split(";")]
    parameters = dict(p.partition("=")[::2] for p in parts[1:] if p)
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        return parts[0], "The scoring server only supports UTF-8"
    unknown = sorted(set(parameters) - {"charset"})
    if unknown:
        return parts[0], f"Unrecognized content type parameters: {', '.join(unknown)}."
    if parts[0].lower() not in CONTENT_TYPES:
        return parts[0], (
            "This predictor only supports the following content types: "
            f"Types: {CONTENT_TYPES}. Got '{content_type or ''}'."
        )
    return parts[0].lower(), None


class Rows(NamedTuple):
    """A request's records, and the names it listed its columns by (a CSV header,
    ``dataframe_split``'s ``columns``), which the check refuses when they repeat a column."""

    records: list[Any]
    columns: list[str]


def records_from_json(body: bytes, limit: int) -> Rows:
    """The records a JSON scoring request holds, in any of MLflow's four forms (refused, 413,
    beyond ``limit`` records: before they are built). An object naming a key twice is refused
    here, naming it (and its record, in a list of records)."""
    try:
        data = loads(body)
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        msg = "Failed to parse input from JSON. Ensure that input is a valid JSON formatted "
        msg += f"string. Error: '{reason}'"
        raise MlflowError(msg, code="MALFORMED_REQUEST") from None
    except RepeatedKeys as repeated:
        raise refusal(repeated.problems(*FORMATS)) from None
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"input type '{type(data).__name__}'"
        msg = f"{REQUIRED}. Received {kind}."
        raise MlflowError(msg)
    given = [key for key in FORMATS if key in data]
    extra = sorted(set(data) - {*FORMATS, "params"})
    if len(given) != 1 or extra:
        msg = f"{REQUIRED}. Received dictionary with input fields: {list(data)}."
        raise MlflowError(msg)
    if "params" in data and not isinstance(data["params"], dict | None):
        msg = "'params' must be a JSON object"
        raise MlflowError(msg, code="INVALID_PARAMETER_VALUE")
    form, value = given[0], data[given[0]]
    if form == "dataframe_split":
        return _split(value, limit)
    if isinstance(value, dict) and form in {"instances", "inputs"}:
        return _columns(value, form, limit)
    if isinstance(value, list) and len(value) > limit:
        raise _too_many(limit)
    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        return Rows(value, [])
    msg = f"'{form}' must be a list of records (JSON objects)"
    msg += ", or an object of columns" if form in {"instances", "inputs"} else ""
    raise MlflowError(msg)


def _too_many(limit: int) -> MlflowError:
    return MlflowError(f"too many records: at most {limit} per request", 413)


def _split(value: Any, limit: int) -> Rows:  # noqa: ANN401 - untrusted JSON
    """``{"columns": [...], "data": [[...], ...]}`` (an ``index`` is allowed and unused)."""
    if not isinstance(value, dict) or not set(value) <= {"columns", "data", "index"}:
        msg = "'dataframe_split' must be an object with 'columns' and 'data' (and 'index')"
        raise MlflowError(msg)
    columns, rows = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        msg = "'dataframe_split.columns' must be a list of column names"
        raise MlflowError(msg)
    if isinstance(rows, list) and len(rows) > limit:
        raise _too_many(limit)
    if not isinstance(rows, list) or not all(
        isinstance(r, list) and len(r) == len(columns) for r in rows
    ):
        msg = f"'dataframe_split.data' must be a list of rows of {len(columns)} values each"
        raise MlflowError(msg)
    return Rows([dict(zip(columns, row, strict=True)) for row in rows], columns)


def _columns(value: dict[str, Any], form: str, limit: int) -> Rows:
    """``{"column": [v, ...], ...}``: columns of one length become records."""
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    if -1 in lengths or len(lengths) > 1:
        msg = f"'{form}' as an object must map each column to a list, all of one length"
        raise MlflowError(msg)
    n_rows = lengths.pop() if lengths else 0
    if n_rows > limit:
        raise _too_many(limit)
    return Rows([{name: cells[i] for name, cells in value.items()} for i in range(n_rows)], [])


def records_from_csv(body: bytes, limit: int) -> Rows:
    """The rows of a ``text/csv`` body with a header, every cell as its exact text (the rule
    for CSV files: ``features.read_table``), as records. pyarrow is imported on first use."""
    import pyarrow as pa  # noqa: PLC0415 - keeps the service's start-up lean
    import pyarrow.csv as pv  # noqa: PLC0415

    try:
        names = pv.open_csv(io.BytesIO(body)).schema.names
        convert = pv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
        )
        convert.null_values = []
        table = pv.read_csv(io.BytesIO(body), convert_options=convert)
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        msg = "Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
        msg += "CSV-formatted Pandas DataFrame produced using the `pandas.DataFrame.to_csv()` "
        msg += f"method. Error: '{error}'"
        raise MlflowError(msg) from None
    if table.num_rows > limit:
        raise _too_many(limit)
    return Rows(list(table.to_pylist()), names)


def refusal(problems: Problems) -> MlflowError:
    """The contract's refusal (invalid records and why) in MLflow's shape."""
    status = 413 if problems.status == 413 else 400
    return MlflowError(problems.message("record", "field"), status)


PREDICTIONS = {
    "type": "object",
    "required": ["predictions"],
    "properties": {"predictions": {"type": "array", "items": {"type": ["string", "number"]}}},
}
ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
}


def request_body(door: Door) -> dict[str, Any]:
    """The OpenAPI request body: the four JSON forms (records by the spec's schema), and CSV."""
    record = {"$ref": f"#/components/schemas/{door.reader.record_name}"}
    names = door.artifact.spec.feature_names
    forms = {
        "dataframe_split": {
            "type": "object",
            "required": ["columns", "data"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": {"type": "array"}},
                "index": {"type": "array"},
            },
            "additionalProperties": False,
        },
        "dataframe_records": {"type": "array", "items": record, "minItems": 1},
        "instances": {"type": "array", "items": record, "minItems": 1},
        "inputs": {
            "type": "object",
            "properties": {name: {"type": "array", "minItems": 1} for name in names},
        },
    }
    one_of = [
        {
            "type": "object",
            "required": [form],
            "properties": {form: schema, "params": {"type": ["object", "null"]}},
            "additionalProperties": False,
        }
        for form, schema in forms.items()
    ]
    example = {"dataframe_records": edge_records(door.artifact.spec)[:1]}
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": one_of}, "example": example},
            "text/csv": {"schema": {"type": "string"}},
        },
    }


def add_routes(app: FastAPI, door: Door) -> None:
    """``/invocations``, ``/ping`` and ``/version`` on ``app``."""
    version = importlib.metadata.version("serving")

    def invoke(body: bytes, media: str, state: dict[str, Any]) -> Response:
        try:
            limit = door.reader.max_records
            records, columns = (
                records_from_csv(body, limit)
                if media == "text/csv"
                else records_from_json(body, limit)
            )
            if not records:
                msg = "no records to score"
                raise MlflowError(msg)  # noqa: TRY301 - answered just below
            predicted = door.predict(door.reader.check(records, columns), state)
            if isinstance(predicted, Problems):
                raise refusal(predicted)
        except MlflowError as error:
            return Response(error.body(), error.status, media_type="application/json")
        labels = predicted.labels.tolist()
        return Response(json.dumps({"predictions": labels}), media_type="application/json")

    @app.post(
        "/invocations",
        summary="Predict, as MLflow's scoring server (dataframe_split / dataframe_records / "
        "instances / inputs, or text/csv)",
        responses={
            200: {"content": {"application/json": {"schema": PREDICTIONS}}},
            400: {"content": {"application/json": {"schema": ERROR}}},
            413: {"content": {"application/json": {"schema": ERROR}}},
            415: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        },
        openapi_extra={"requestBody": request_body(door)},
    )
    async def invocations(request: Request) -> Response:
        media, refused = media_type(request.headers.get("content-type"))
        if refused is not None:
            return Response(refused, 415, media_type="text/plain")
        body = await request.body()
        return await door.handle(body, invoke, media, request.scope[STATE_KEY])

    # MLflow labels these two bodies application/json, though neither is JSON; text/plain here.
    text = {"content": {"text/plain": {"schema": {"type": "string"}}}}

    @app.get(
        "/ping",
        summary="MLflow's health check: 200 once the model is ready",
        response_class=PlainTextResponse,
        responses={200: text, 503: text},
    )
    async def ping() -> Response:
        return PlainTextResponse("\n", 200 if door.ready.is_set() else 503)

    @app.get(
        "/version",
        summary="The server's version, as MLflow's /version answers",
        response_class=PlainTextResponse,
        responses={200: text},
    )
    async def get_version() -> Response:
        return PlainTextResponse(version)
