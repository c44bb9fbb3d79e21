"""The HTTP service: ``create_app(settings)`` builds a FastAPI app around one verified artifact.

Not ``from __future__ import annotations``: the request model is made at run time from the
artifact's spec, and FastAPI must see it as a real annotation.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from uvicorn.config import STARTUP_FAILURE

import serving
from features import edge_records, validate
from model import Artifact, ArtifactError, ModelError, Prediction, load_artifact_or_default
from serving import mlflow_protocol, open_inference
from serving.door import Door
from serving.exceptions import StartupError
from serving.observability import (
    STATE_KEY,
    Metrics,
    ObservabilityMiddleware,
    configure_logging,
)
from serving.schemas import (
    MAX_ERROR_ITEMS,
    ErrorItem,
    ErrorResponse,
    Item,
    Metadata,
    PredictionItem,
    PredictResponse,
    Problems,
    RequestReader,
)
from serving.settings import Settings

LOG = logging.getLogger("serving.app")
ROUTES = {
    "/health",
    "/ready",
    "/v1/metadata",
    "/v1/predict",
    "/metrics",
    "/invocations",
    "/ping",
    "/version",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    *(
        f"{model}{tail}"
        for model in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")
        for tail in ("", "/ready", "/infer")
    ),
}


def load(settings: Settings) -> Artifact:
    """The configured artifact, or the one bundled in the installed model package; with a
    public key, only once its signature verifies; with a digest, only that artifact."""
    artifact = load_artifact_or_default(settings.artifact, settings.public_key)
    if settings.artifact_digest not in {None, artifact.digest}:
        msg = (
            f"{artifact.path}: not the artifact this service started with (its manifest's "
            f"sha256 is {artifact.digest}, not {settings.artifact_digest}): it was replaced; "
            "restart the service to serve the new one"
        )
        raise ArtifactError(msg)
    return artifact


def predict_items(artifact: Artifact, predicted: Prediction) -> list[PredictionItem]:
    """Each record's prediction, in order, as ``/v1/predict`` answers it."""
    labels, proba = predicted.labels, predicted.probabilities
    if proba is None:
        return [PredictionItem(prediction=float(p)) for p in labels.tolist()]
    classes = artifact.classes
    return [
        PredictionItem(prediction=str(p), probabilities=dict(zip(classes, row, strict=True)))
        for p, row in zip(labels.tolist(), proba.tolist(), strict=True)
    ]


def _error(
    status: int, error: str, detail: list[ErrorItem] | None = None, total: int | None = None
) -> Response:
    """The service's error shape, as ASCII JSON: text a client sent (a field name, even a lone
    surrogate) is always encodable."""
    detail = detail or []
    body = ErrorResponse(error=error, detail=detail, total=len(detail) if total is None else total)
    return Response(json.dumps(body.model_dump()), status, media_type="application/json")


def _invalid(problems: Problems) -> Response:
    """The refusal as the service's error shape: 400 malformed JSON, 413 too many records, 422
    invalid records with the first :data:`MAX_ERROR_ITEMS` problems and their total."""
    items = [
        ErrorItem(record=record, field=field, message=message)
        for record, field, message in problems.items[:MAX_ERROR_ITEMS]
    ]
    return _error(problems.status, problems.error, items, total=problems.total)


def _is_json(content_type: str | None) -> bool:
    """No content type (read as JSON, as FastAPI does), ``application/json`` or ``*/*+json``."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def create_app(settings: Settings | None = None, artifact: Artifact | None = None) -> FastAPI:
    """Build the service. Loads and verifies the artifact now, since the request schema comes
    from its spec; the lifespan then runs a self-check prediction before ``/ready`` says yes."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    artifact = artifact or load(settings)
    metrics = Metrics()
    reader = RequestReader(artifact.spec, settings.max_records)
    request_model = reader.model
    manifest = artifact.manifest
    ready = asyncio.Event()
    door = Door(artifact, reader, metrics, ready)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            refused = await run_in_threadpool(_self_check, artifact)
        except Exception:
            LOG.exception("self-check prediction failed; /ready stays 503")
        else:
            if refused:  # the model's reason says it all: one line, no traceback
                LOG.error("self-check prediction refused: %s; /ready stays 503", refused)
            else:
                ready.set()
        yield

    app = FastAPIOffline(  # /docs and /redoc work without internet: their assets are served here
        title=f"{manifest.model_name} prediction service",
        version=serving.__version__,
        description=f"Serves {manifest.model_name} {manifest.model_version} ({manifest.task}).",
        lifespan=lifespan,
        responses={
            400: {"model": ErrorResponse},
            408: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            500: {"model": ErrorResponse},
        },
    )
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=metrics,
        routes=ROUTES,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
    )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, exc: RequestValidationError) -> Response:
        items: list[Item] = [
            (None, ".".join(map(str, e["loc"])) or None, str(e["msg"])) for e in exc.errors()
        ]
        return _invalid(Problems(422, "invalid input", items, len(items)))

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, exc: HTTPException) -> Response:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # a 405's Allow, which RFC 9110 requires
        return response

    @app.get("/health", summary="Liveness: 200 while the process runs")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="Readiness: 200 once the model passed its self-check",
        responses={503: {"model": ErrorResponse}},
    )
    async def ready_check() -> Response:
        if not ready.is_set():
            return _error(503, "model not ready")
        return JSONResponse(
            {"status": "ready", "model": manifest.model_name, "version": manifest.model_version}
        )

    metadata = Metadata(
        model=manifest.model_name,
        version=manifest.model_version,
        task=manifest.task,
        target=artifact.spec.target.name,
        classes=manifest.classes,
        created_at=manifest.created_at.isoformat(),
        git_commit=manifest.git_commit,
        versions=manifest.versions,
        metrics=manifest.metrics,
        features=[c.model_dump(mode="json") for c in artifact.spec.features],
        artifact_sha256=manifest.files["pipeline.skops"],
    )

    @app.get("/v1/metadata", summary="The model being served")
    async def get_metadata() -> Metadata:
        return metadata

    def respond(body: bytes, state: dict[str, Any]) -> Response:
        """Parse, validate and predict (in a worker thread unless the body is small and the
        model NumPy-only, see :data:`serving.door.INLINE_BODY_BYTES`)."""
        predicted = door.predict(reader.read(body), state)
        if isinstance(predicted, Problems):
            return _invalid(predicted)
        items = predict_items(artifact, predicted)
        answer = PredictResponse(
            model=manifest.model_name, version=manifest.model_version, predictions=items
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post(
        "/v1/predict",
        summary="Predict a batch of records, in order",
        response_model=PredictResponse,
        responses={
            415: {"model": ErrorResponse, "description": "the body is not JSON"},
            422: {"model": ErrorResponse, "description": "invalid records"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{request_model.__name__}"},
                        "example": {"records": edge_records(artifact.spec)[:1]},
                    }
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        if not _is_json(request.headers.get("content-type")):
            return _error(415, "unsupported content type: send JSON (application/json)")
        body = await request.body()
        return await door.handle(body, respond, request.scope[STATE_KEY])

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def get_metrics() -> Response:
        return Response(generate_latest(metrics.exposition), media_type=CONTENT_TYPE_LATEST)

    mlflow_protocol.add_routes(app, door)
    open_inference.add_routes(app, door)
    _document_request(app, request_model)
    return app


def _document_request(app: FastAPI, request_model: type[BaseModel]) -> None:
    """Put the request model (validated by ``respond``, not by FastAPI) into the OpenAPI
    schema, so /docs and clients see every field of a record."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = generate()  # FastAPI caches it: completed once, on the first call
        if first:
            request = request_model.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request.pop("$defs", {}))
            components[request_model.__name__] = request
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _self_check(artifact: Artifact) -> str:
    """Predict one record made of each feature's sample value (midpoint, first category...)
    and answer it as ``/v1/predict`` would: why the record is refused (invalid, or no finite
    prediction), or ``""`` when it is answered."""
    result = validate(artifact.spec, edge_records(artifact.spec)[:1], source="self-check")
    if not len(result.valid):
        return "the sample record is invalid: " + "; ".join(result.report.reasons_by_row()[1])
    predicted = artifact.predict(result.valid)
    if len(predicted.rows) != 1:
        return predicted.reason or "no prediction for the sample record"
    predict_items(artifact, predicted)
    return ""


def app_from_env() -> FastAPI:
    """uvicorn factory (``serving.app:app_from_env``): settings from ``SERVING_*``. An artifact
    refused (one replaced since ``serve`` verified it) or a ``PROMETHEUS_MULTIPROC_DIR`` that
    is no folder it can write in (one removed since) is one error line, and the worker exits
    as one that failed to start: uvicorn stops the service rather than restart it."""
    try:
        return create_app(Settings())
    except (ModelError, StartupError) as error:
        LOG.error("%s", error)  # noqa: TRY400 - the message says it all: no traceback
        raise SystemExit(STARTUP_FAILURE) from None
