"""Request metrics (Prometheus), one JSON log line per request, and the body-size limit.

All three live in one pure ASGI middleware: it sees every request once, adds no task or
thread, and keeps payloads out of the logs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG = logging.getLogger("serving.access")
STATE_KEY = "serving.request"  # per-request dict in the ASGI scope: routes put counts here

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "serving_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "serving_predictions_total", "records predicted", registry=self.registry
        )
        self.rejected = Counter(
            "serving_rejected_records_total",
            "records rejected by validation",
            registry=self.registry,
        )


class JsonFormatter(logging.Formatter):
    """Render a record's ``fields`` (or its message) as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        payload.update(getattr(record, "fields", None) or {"message": record.getMessage()})
        return json.dumps(payload, default=str)


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the service's own loggers (idempotent)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("serving")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


class BodyTooLarge(HTTPException):
    """The request body passed the configured limit (raised while the body streams in)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class ObservabilityMiddleware:
    """Limit body size, time the request, count it, log it."""

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, routes: set[str], max_body_bytes: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in self.routes else "(other)"
        state: dict[str, Any] = {"status": 500, "records": None}
        scope[STATE_KEY] = state
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, state)
        else:
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        raise BodyTooLarge(self.max_body_bytes)
                return message

            async def recording_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    state["status"] = message["status"]
                await send(message)

            try:
                await self.app(scope, limited_receive, recording_send)
            except BodyTooLarge:
                await self._too_large(send, state)
        elapsed = time.perf_counter() - started
        status = str(state["status"])
        self.metrics.requests.labels(route, status).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        fields = {
            "method": scope["method"],
            "route": route,
            "status": state["status"],
            "latency_ms": round(elapsed * 1000, 3),
            "records": state["records"],
        }
        LOG.info("request", extra={"fields": fields})

    async def _too_large(self, send: Send, state: dict[str, Any]) -> None:
        body = json.dumps(
            {"error": f"request body larger than {self.max_body_bytes} bytes", "detail": []}
        ).encode()
        state["status"] = 413
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
