"""The Open Inference Protocol (KServe V2) over REST, another door to the same input contract.

One input per spec feature (MLServer's ``pd`` content type: a table, one tensor per column),
typed from the feature's own JSON schema: numbers ``FP64``, integer categories ``INT64``,
booleans ``BOOL``, categories ``BYTES``; shape ``[n]`` (or ``[n, 1]``). Outputs: ``predict``
(class names as ``BYTES``, or ``FP64`` values), and for classifiers ``predict_proba``
(``FP64``, ``[n, classes]``) when the request asks for it. Inputs may use the binary tensor
extension (``Inference-Header-Content-Length``), as ``tritonclient`` sends by default; answers
are JSON.

**Missing values.** The protocol has no null. Send a column that holds missing values as
``BYTES``: an empty string (or ``NA``, ``N/A``, ``null``, ``NULL``) is a missing value and any
other cell is read by the contract's text rule (``"45.2"`` is the number 45.2), exactly as a
CSV cell would be. A NaN in a floating-point tensor is refused, as everywhere.

**Strict reading.** What a request means is never guessed: an input named twice (or any JSON
object naming a key twice), an output asked twice, a value its datatype cannot hold (``45.7``
in an ``INT64`` tensor, ``1e39`` in an ``FP32``), ``BYTES`` that are not UTF-8, an input with
both ``data`` and ``binary_data_size``, a header length that is not plain digits are each a 400
naming it."""

import json
import math
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

import serving
from features import edge_records
from model import Prediction
from serving.door import Door
from serving.observability import STATE_KEY
from serving.schemas import MAX_ERROR_ITEMS, Item, Problems, RepeatedKeys, loads

HEADER_LENGTH = "inference-header-content-length"
NUMPY_TYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class InferenceError(Exception):
    """A refusal: ``{"error": message}`` with an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status

    def response(self) -> Response:
        """The protocol's error answer, as ASCII JSON: text a client sent (an input's name,
        even a lone surrogate) is always encodable."""
        body = json.dumps({"error": self.message})
        return Response(body, self.status, media_type="application/json")


def datatype(schema: dict[str, Any]) -> str:
    """The tensor type of a feature, from its JSON schema's first form (what a value is)."""
    first = schema.get("anyOf", [schema])[0]
    kind = first.get("type")
    if kind is None and "enum" in first:
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in first["enum"])
        kind = "integer" if whole else "string"
    return {"number": "FP64", "integer": "INT64", "boolean": "BOOL"}.get(kind, "BYTES")


def model_metadata(door: Door) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model, one input per feature, the outputs."""
    artifact = door.artifact
    classes = artifact.classes
    outputs = [
        {"name": "predict", "datatype": "BYTES" if classes else "FP64", "shape": [-1]},
    ]
    if classes:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": artifact.name,
        "versions": [artifact.version],
        "platform": "penguins-ml",
        "inputs": [
            {"name": c.name, "datatype": datatype(c.json_schema()), "shape": [-1]}
            for c in artifact.spec.features
        ],
        "outputs": outputs,
        "parameters": {"content_type": "pd", "classes": classes},
    }


def parse(body: bytes, header_length: str | None, limit: int) -> dict[str, Any]:
    """The request's JSON header, with binary tensors (the binary extension) put in place as
    ``data`` lists (refused, 413, beyond ``limit`` rows: before they are built)."""
    size = len(body) if header_length is None else _header_size(header_length, len(body))
    try:
        request = loads(body[:size])
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        msg = f"malformed JSON: {reason}"
        raise InferenceError(msg) from None
    except RepeatedKeys as repeated:
        raise refusal(repeated.problems()) from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        msg = 'expected {"inputs": [...]}, one input per feature'
        raise InferenceError(msg)
    if not isinstance(request.get("parameters", {}), dict) or not isinstance(
        request.get("id", ""), str
    ):
        msg = "the request's parameters must be an object, its id a string"
        raise InferenceError(msg)
    offset = size
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("parameters", {}), dict):
            msg = "each input must be an object: name, shape, datatype, data (parameters: object)"
            raise InferenceError(msg)
        binary = (tensor.get("parameters") or {}).get("binary_data_size")
        if binary is not None:
            if type(binary) is not int or binary < 0 or offset + binary > len(body):
                msg = f"input {tensor.get('name')!r}: bad binary_data_size"
                raise InferenceError(msg)
            if "data" in tensor:
                msg = f"input {tensor.get('name')!r}: both data and binary_data_size; send one"
                raise InferenceError(msg)
            tensor["data"] = _from_bytes(body[offset : offset + binary], tensor, limit)
            offset += binary
    if offset != len(body):
        msg = "the body holds more binary data than the inputs announce"
        raise InferenceError(msg)
    return request


def _header_size(header_length: str, body_size: int) -> int:
    """The JSON header's size from its length header: plain ASCII digits only (``int()`` would
    also take ``6_16``, `` 616``, ``+616`` or other scripts' digits), within the body."""
    if not (header_length.isascii() and header_length.isdigit() and len(header_length) < 20):
        msg = f"{HEADER_LENGTH} must be a number in plain digits, got {header_length!r}"
        raise InferenceError(msg)
    size = int(header_length)
    if not 0 < size <= body_size:
        msg = f"{HEADER_LENGTH} {size} does not fit the body"
        raise InferenceError(msg)
    return size


def _from_bytes(raw: bytes, tensor: dict[str, Any], limit: int) -> list[Any]:
    kind = tensor.get("datatype")
    if not isinstance(kind, str):
        msg = f"input {tensor.get('name')!r}: datatype must be a string"
        raise InferenceError(msg)
    if kind == "BYTES":
        cells, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                msg = f"input {tensor.get('name')!r}: truncated BYTES element"
                raise InferenceError(msg)
            (length,) = struct.unpack_from("<I", raw, at)
            if at + 4 + length > len(raw):
                msg = f"input {tensor.get('name')!r}: truncated BYTES element"
                raise InferenceError(msg)
            try:
                cells.append(raw[at + 4 : at + 4 + length].decode())
            except UnicodeDecodeError:
                msg = f"input {tensor.get('name')!r}: element {len(cells)} is not UTF-8 text"
                raise InferenceError(msg) from None
            at += 4 + length
            if len(cells) > limit:
                raise _too_many(limit)
        return cells
    if kind not in NUMPY_TYPES or len(raw) % np.dtype(NUMPY_TYPES[kind]).itemsize:
        msg = f"input {tensor.get('name')!r}: binary data of datatype {kind!r}"
        raise InferenceError(msg)
    if len(raw) // np.dtype(NUMPY_TYPES[kind]).itemsize > limit:
        raise _too_many(limit)
    return list(np.frombuffer(raw, dtype=NUMPY_TYPES[kind]).tolist())


def _too_many(limit: int) -> InferenceError:
    return InferenceError(f"too many records: at most {limit} per request", 413)


def _cells(tensor: dict[str, Any], limit: int) -> tuple[str, list[Any]]:
    """An input's name and its values, flattened, checked against its shape and datatype."""
    name, kind, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if not isinstance(name, str):
        msg = "an input without a name"
        raise InferenceError(msg)
    if not isinstance(kind, str) or (kind != "BYTES" and kind not in NUMPY_TYPES):
        msg = f"input {name!r}: unknown datatype {kind!r}"
        raise InferenceError(msg)
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        msg = f"input {name!r}: shape must be a list of sizes"
        raise InferenceError(msg)
    if len(shape) not in {1, 2} or (len(shape) == 2 and shape[1] != 1):
        msg = f"input {name!r}: shape must be [n] or [n, 1] (one column)"
        raise InferenceError(msg)
    if shape[0] > limit:
        raise _too_many(limit)
    flat = _flatten(data, name)
    if len(flat) != shape[0]:
        msg = f"input {name!r}: shape {shape} but {len(flat)} values"
        raise InferenceError(msg)
    holds = _holds(kind)
    for cell in flat:
        if not holds(cell):
            msg = f"input {name!r}: {cell!r} is not a {kind} value"
            raise InferenceError(msg)
    return name, flat


def _holds(kind: str) -> Callable[[Any], bool]:
    """Whether a JSON value is a value of ``kind``: text for ``BYTES``, true or false for
    ``BOOL``, a whole number in range for the integer types (``45.7`` or ``45.0`` is no
    ``INT64``), a number in range for the floating-point ones (``1e39`` is no ``FP32``,
    ``70000`` no ``FP16``; NaN and infinities are left to the contract, which refuses them)."""
    if kind in {"BYTES", "BOOL"}:
        exact = str if kind == "BYTES" else bool
        return lambda cell: type(cell) is exact
    if kind.startswith(("INT", "UINT")):
        info = np.iinfo(kind.lower())  # INT64 -> int64 ...
        low, high = int(info.min), int(info.max)
        return lambda cell: type(cell) is int and low <= cell <= high
    top = float(np.finfo(NUMPY_TYPES[kind]).max)
    return lambda cell: (
        (type(cell) is int and abs(cell) <= top)
        or (type(cell) is float and (abs(cell) <= top or not math.isfinite(cell)))
    )


def _flatten(data: Any, name: str) -> list[Any]:  # noqa: ANN401 - untrusted JSON
    if not isinstance(data, list):
        msg = f"input {name!r}: data must be a list"
        raise InferenceError(msg)
    if data and all(isinstance(row, list) for row in data):
        if any(len(row) != 1 for row in data):
            msg = f"input {name!r}: each row must hold one value"
            raise InferenceError(msg)
        return [row[0] for row in data]
    return data


def records(request: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """One record per row of the inputs (columns of one length, at most ``limit``), and the
    inputs' names, in order, to be refused by :func:`named_twice` when one repeats."""
    tensors = [_cells(tensor, limit) for tensor in request["inputs"]]
    lengths = {len(cells) for _, cells in tensors}
    if len(lengths) > 1:
        msg = "inputs of different lengths: one row per record in every input"
        raise InferenceError(msg)
    n_rows = lengths.pop() if lengths else 0
    if not n_rows:
        msg = "no rows to infer"
        raise InferenceError(msg)
    columns = dict(tensors)
    rows = [{name: cells[i] for name, cells in columns.items()} for i in range(n_rows)]
    return rows, [name for name, _ in tensors]


def named_twice(names: list[str], rows: int) -> Problems | None:
    """The refusal of inputs naming a column more than once, whatever the column (the records
    keep one copy): a file's header may repeat a column the spec ignores, but V2 has no header
    to follow, so an input named twice is ambiguous; None when each is named once."""
    twice: list[Item] = [
        (None, name, f"appears {count} times")
        for name, count in sorted(Counter(names).items())
        if count > 1
    ]
    if not twice:
        return None
    return Problems(400, "invalid input", twice[:MAX_ERROR_ITEMS], len(twice), rows)


def _requested(request: dict[str, Any], classes: list[str]) -> list[str]:
    asked = request.get("outputs")
    if asked is None:
        return ["predict"]
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        msg = "outputs must be a list of {name}"
        raise InferenceError(msg)
    names = [o.get("name") for o in asked]
    known = ["predict", "predict_proba"] if classes else ["predict"]
    unknown = [n for n in names if n not in known]
    if unknown:
        msg = f"unknown output {unknown[0]!r}; this model has {known}"
        raise InferenceError(msg)
    # each at most once, so an answer is never larger than all the outputs once
    repeated = [(n, count) for n, count in Counter(names).items() if count > 1]
    if repeated:
        name, count = repeated[0]
        msg = f"output {name!r} asked {count} times; ask each output once (this model has {known})"
        raise InferenceError(msg)
    return [str(n) for n in names]


def refusal(problems: Problems) -> InferenceError:
    """The contract's refusal (invalid rows and why) as the protocol's error."""
    return InferenceError(problems.message("row", "input"), 413 if problems.status == 413 else 400)


ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def _openapi(door: Door, *, versioned: bool, body: bool) -> dict[str, Any]:
    """Path parameters limited to the served model (another name is a 404), and the infer
    request's schema with the documented example."""
    artifact = door.artifact
    parameters = [
        {"name": "name", "in": "path", "required": True, "schema": {"enum": [artifact.name]}}
    ]
    if versioned:
        version = {"enum": [artifact.version]}
        parameters.append({"name": "version", "in": "path", "required": True, "schema": version})
    extra: dict[str, Any] = {"parameters": parameters}
    if body:
        names = artifact.spec.feature_names
        outputs = ["predict", "predict_proba"] if artifact.classes else ["predict"]
        tensor = {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"enum": names},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": {"enum": ["BYTES", *NUMPY_TYPES]},
                "data": {"type": "array"},
                "parameters": {"type": "object"},
            },
        }
        schema = {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": tensor, "minItems": 1},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"enum": outputs}},
                    },
                },
            },
        }
        record = edge_records(artifact.spec)[0]
        example = {
            "inputs": [
                {"name": c.name, "shape": [1], "datatype": "BYTES", "data": [_text(record[c.name])]}
                for c in artifact.spec.features
            ]
        }
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    return extra


def _text(value: Any) -> str:  # noqa: ANN401 - a record's cell
    """A cell as the contract's text: null is the empty string."""
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _answer(
    door: Door, predicted: Prediction, wanted: list[str], request_id: str
) -> dict[str, Any]:
    """The infer response: the asked outputs, in the order asked."""
    artifact, n_rows = door.artifact, len(predicted.labels)
    outputs = {
        "predict": {
            "name": "predict",
            "datatype": "BYTES" if artifact.classes else "FP64",
            "shape": [n_rows],
            "data": predicted.labels.tolist(),
        }
    }
    if predicted.probabilities is not None:
        outputs["predict_proba"] = {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [n_rows, len(artifact.classes)],
            "data": predicted.probabilities.ravel().tolist(),
        }
    return {
        "model_name": artifact.name,
        "model_version": artifact.version,
        "id": request_id,
        "parameters": {"content_type": "pd"},
        "outputs": [outputs[name] for name in wanted],
    }


def add_routes(app: FastAPI, door: Door) -> None:
    """The protocol's health, metadata and infer routes on ``app``."""
    artifact = door.artifact
    metadata = model_metadata(door)

    def known(request: Request) -> None:
        """Refuse (404) a path naming another model or version. The routes read their path
        parameters from the request, so the OpenAPI schema documents them once (`_openapi`)."""
        name, version = request.path_params["name"], request.path_params.get("version")
        if name != artifact.name or version not in {None, artifact.version}:
            msg = f"unknown model {name!r}" + (f" version {version!r}" if version else "")
            msg += f"; this server has {artifact.name!r} version {artifact.version!r}"
            raise InferenceError(msg, 404)

    def infer(body: bytes, header: str | None, state: dict[str, Any]) -> Response:
        try:
            limit = door.reader.max_records
            request = parse(body, header, limit)
            wanted = _requested(request, artifact.classes)
            rows, names = records(request, limit)
            checked = named_twice(names, len(rows)) or door.reader.check(rows, names)
            predicted = door.predict(checked, state)
            if isinstance(predicted, Problems):
                raise refusal(predicted)
        except InferenceError as error:
            return error.response()
        answer = _answer(door, predicted, wanted, str(request.get("id", "")))
        return Response(json.dumps(answer), media_type="application/json")

    async def infer_route(request: Request) -> Response:
        try:
            known(request)
        except InferenceError as error:
            return error.response()
        body = await request.body()
        header = request.headers.get(HEADER_LENGTH)
        return await door.handle(body, infer, header, request.scope[STATE_KEY])

    async def model_route(request: Request) -> Response:
        try:
            known(request)
        except InferenceError as error:
            return error.response()
        return JSONResponse(metadata)

    async def model_ready(request: Request) -> Response:
        try:
            known(request)
        except InferenceError as error:
            return error.response()
        ready = door.ready.is_set()
        return JSONResponse({"name": artifact.name, "ready": ready}, 200 if ready else 503)

    @app.get("/v2/health/live", summary="Open Inference Protocol: liveness")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", summary="Open Inference Protocol: readiness")
    async def ready() -> Response:
        is_ready = door.ready.is_set()
        return JSONResponse({"ready": is_ready}, 200 if is_ready else 503)

    @app.get("/v2", summary="Open Inference Protocol: server metadata")
    async def server() -> dict[str, Any]:
        return {
            "name": "serving",
            "version": serving.__version__,
            "extensions": ["binary_tensor_data"],
        }

    errors: dict[int | str, dict[str, Any]] = {
        code: {"content": {"application/json": {"schema": ERROR}}} for code in (400, 404, 413)
    }
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        versioned = "{version}" in prefix
        documented = _openapi(door, versioned=versioned, body=False)
        for path, endpoint, method, summary in (
            (prefix, model_route, "GET", "Open Inference Protocol: model metadata"),
            (f"{prefix}/ready", model_ready, "GET", "Open Inference Protocol: model ready"),
            (f"{prefix}/infer", infer_route, "POST", "Open Inference Protocol: infer"),
        ):
            extra = (
                _openapi(door, versioned=versioned, body=True) if method == "POST" else documented
            )
            app.add_api_route(
                path,
                endpoint,
                methods=[method],
                summary=summary,
                responses=errors,
                openapi_extra=extra,
            )
