"""Request metrics (Prometheus), one JSON log line per request, and the body limits.

All three live in one pure ASGI middleware: it sees every request once, adds no task or
thread, and keeps payloads out of the logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
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


class BodyTimeout(HTTPException):
    """The request body did not arrive in time (raised while the body streams in)."""

    def __init__(self, limit: float) -> None:
        super().__init__(408, f"request body not received within {limit:g} s")


class ObservabilityMiddleware:
    """Limit body size and time, time the request, count it, log it: every request once,
    whatever its status, 500 included (an exception is answered here in the service's JSON
    error shape, and its traceback goes into that request's log line)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        routes: set[str],
        max_body_bytes: int,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in self.routes else "(other)"
        state: dict[str, Any] = {"status": None, "records": None}
        scope[STATE_KEY] = state
        fields: dict[str, Any] = {}
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reply(send, state, BodyTooLarge(self.max_body_bytes))
        else:
            try:
                await self.app(scope, self._limited(receive, started), self._recording(send, state))
            except (BodyTooLarge, BodyTimeout) as error:  # raised outside a route
                await self._reply(send, state, error)
            except Exception as error:
                fields["error"] = f"{type(error).__name__}: {error}"
                fields["traceback"] = traceback.format_exc()
                if state["status"] is None:
                    await self._reply(send, state, HTTPException(500, "internal server error"))
                state["status"] = 500
        elapsed = time.perf_counter() - started
        status = state["status"] or 500
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        fields = {
            "method": scope["method"],
            "route": route,
            "status": status,
            "latency_ms": round(elapsed * 1000, 3),
            "records": state["records"],
            **fields,
        }
        LOG.log(
            logging.ERROR if status >= 500 else logging.INFO, "request", extra={"fields": fields}
        )

    def _limited(self, receive: Receive, started: float) -> Receive:
        """``receive``, refusing a body past the size limit or still arriving at the deadline."""
        received = 0
        complete = False
        deadline = started + self.body_timeout

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body: waiting for a disconnect is not the body's time
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - time.perf_counter())
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                complete = not message.get("more_body", False)
            return message

        return limited_receive

    @staticmethod
    def _recording(send: Send, state: dict[str, Any]) -> Send:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        return recording_send

    @staticmethod
    async def _reply(send: Send, state: dict[str, Any], error: HTTPException) -> None:
        body = json.dumps({"error": error.detail, "detail": [], "total": 0}).encode()
        state["status"] = error.status_code
        await send(
            {
                "type": "http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
