"""Request metrics (Prometheus), one JSON log line per request, and the body limits.

All three live in one pure ASGI middleware: it sees every request once, adds no task or
thread, and keeps payloads out of the logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import traceback
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.exceptions import StartupError

LOG = logging.getLogger("serving.access")
STATE_KEY = "serving.request"  # per-request dict in the ASGI scope: routes put counts here

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
METRICS_FILE = re.compile(
    r"(?:counter|histogram|summary|gauge_(?:live)?(?:all|min|max|sum|mostrecent))_\d+\.db"
)
"""The names prometheus_client gives its multiprocess files: ``<type>_<pid>.db``, and
``gauge_<mode>_<pid>.db`` for gauges (``prometheus_client.values.MmapedValue``)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(eq=False)  # compared (and kept in a weak set) by identity
class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app).

    With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, see
    :func:`serving.server.serve`), each process writes its values to files there and
    :attr:`exposition` adds up every process's: ``/metrics`` answers the service's totals,
    whichever worker takes the scrape."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.exposition = self.registry
        # A folder missing or unusable (also one removed since `serve` checked it) is a
        # StartupError in one line, before prometheus_client fails to write there.
        if directory := check_multiprocess_dir():
            self.exposition = CollectorRegistry()
            self.exposition.register(MultiProcessTotals(directory))
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
        _LIVE.add(self)


class MultiProcessTotals:
    """prometheus_client's multiprocess collector, sturdier: it reads only the files
    prometheus_client writes (:data:`METRICS_FILE`), and when they do not add up (one is
    truncated, corrupt, not a file) it leaves out, with one warning each, those that stop
    the others from adding up: nothing in the folder can turn ``/metrics`` into a 500. A file
    left out stays out, unread, while its modification time and size stay the same, so each
    scrape merges once however long a bad file sits there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.skipped: set[str] = set()
        self.bad: dict[str, tuple[int, int]] = {}
        """The files left out: name -> (modification time in ns, size) when it was."""

    def collect(self) -> Iterable[Metric]:
        """Every process's values, added up."""
        files = self._files()
        self.bad = {name: self.bad[name] for name in files if self.bad.get(name) == files[name]}
        usable = [name for name in files if name not in self.bad]
        try:
            return _merge(usable)
        except Exception:  # one of them is not prometheus_client's: find which
            pass
        kept: list[str] = []
        for name in usable:  # each alone: what it holds is unreadable
            try:
                _merge([name])
            except Exception as error:  # whatever the file holds
                self._skip(name, files[name], error)
            else:
                kept.append(name)
        try:
            return _merge(kept)
        except Exception:  # readable alone, not together (one metric of two types): one by one
            pass
        merged = _merge([])
        together: list[str] = []
        for name in kept:
            try:
                merged = _merge([*together, name])
            except Exception as error:
                self._skip(name, files[name], error)
            else:
                together.append(name)
        return merged

    def _files(self) -> dict[str, tuple[int, int]]:
        """The metrics files in the folder, sorted, with their modification time and size."""
        found: dict[str, tuple[int, int]] = {}
        for path in sorted(self.directory.glob("*.db")):
            if METRICS_FILE.fullmatch(path.name):
                try:
                    stat = path.stat()
                except OSError:  # gone meanwhile (or a dangling link): nothing to add
                    continue
                found[str(path)] = (stat.st_mtime_ns, stat.st_size)
        return found

    def _skip(self, name: str, key: tuple[int, int], error: Exception) -> None:
        self.bad[name] = key
        if name not in self.skipped:
            self.skipped.add(name)
            logging.getLogger("serving.metrics").warning(
                "%s: not a metrics file prometheus_client can read (%s: %s); left out of /metrics",
                name,
                type(error).__name__,
                error,
            )


def _merge(files: list[str]) -> Iterable[Metric]:
    return MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call,no-any-return]


def check_multiprocess_dir() -> Path | None:
    """The folder ``PROMETHEUS_MULTIPROC_DIR`` names, if set, checked: a folder the service
    can write in, else :class:`StartupError` with one line saying what is wrong. Each
    :class:`Metrics` runs it (every worker, however the app is built)."""
    value = os.environ.get(MULTIPROCESS_DIR)
    if not value:
        return None
    directory = Path(value)
    where = f"{MULTIPROCESS_DIR}={value}"
    if not directory.exists():
        msg = f"{where}: no such directory (create it, or unset the variable)"
        raise StartupError(msg)
    if not directory.is_dir():
        msg = f"{where}: not a directory"
        raise StartupError(msg)
    if not os.access(directory, os.W_OK | os.X_OK):
        msg = f"{where}: the service cannot write there"
        raise StartupError(msg)
    return directory


def prepare_multiprocess_dir() -> Path | None:
    """Check the folder ``PROMETHEUS_MULTIPROC_DIR`` names, if set
    (:func:`check_multiprocess_dir`), and remove the metrics files an earlier run left there
    (only :data:`METRICS_FILE` names, only regular files; the folder's other files stay): a
    service starts counting from zero. Run it once, before the workers start; raises
    :class:`StartupError` with one line saying what is wrong."""
    directory = check_multiprocess_dir()
    if directory is None:
        return None
    where = f"{MULTIPROCESS_DIR}={os.environ[MULTIPROCESS_DIR]}"
    try:
        stale = [
            entry
            for entry in os.scandir(directory)
            if METRICS_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
        ]
        for entry in stale:
            Path(entry.path).unlink(missing_ok=True)
    except OSError as error:
        msg = f"{where}: cannot remove the metrics of an earlier run: {error.strerror}"
        raise StartupError(msg) from None
    return directory


class JsonFormatter(logging.Formatter):
    """Render a record's ``fields`` (or its message) as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker, when there are several
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


def error_body(message: str) -> bytes:
    """The service's error shape, as bytes (ASCII: any text a client sent stays encodable)."""
    return json.dumps({"error": message, "detail": [], "total": 0}).encode()


def log_request(fields: dict[str, Any]) -> None:
    """The one JSON line of a request: level ``error`` for a 5xx."""
    level = logging.ERROR if fields["status"] >= 500 else logging.INFO
    LOG.log(level, "request", extra={"fields": fields})


def record_server_response(status: int, reason: str) -> None:
    """Count and log an answer the HTTP server gave before any app saw the request (the
    connection cap's 503, a malformed request's 400): route ``(server)``."""
    for metrics in list(_LIVE):
        metrics.requests.labels(SERVER_ROUTE, str(status)).inc()
    log_request({"method": None, "route": SERVER_ROUTE, "status": status, "error": reason})


SERVER_ROUTE = "(server)"
_LIVE: weakref.WeakSet[Metrics] = weakref.WeakSet()


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length", b"0")
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0


class ObservabilityMiddleware:
    """Limit body size and time, time the request, count it, log it: every request once,
    whatever its status, 500 included (an exception is answered here in the service's JSON
    error shape, and its traceback goes into that request's log line). A response sent before
    the request's body was read closes the connection, so a client cannot keep it by sending
    the body forever. A client that leaves mid-request is logged with status 499."""

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
        self.routes = {r for r in routes if "{" not in r}
        self.templates = [  # /v2/models/{name}/infer: one label, whatever the name
            (re.compile(re.sub(r"\{[^}/]+\}", "[^/]+", r) + "$"), r) for r in routes if "{" in r
        ]
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    def route(self, path: str) -> str:
        """The metrics and log label of a path: its route, or ``(other)``."""
        if path in self.routes:
            return path
        return next((label for pattern, label in self.templates if pattern.match(path)), "(other)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = self.route(scope["path"])
        state: dict[str, Any] = {"status": None, "records": None, "body": _has_body(scope)}
        scope[STATE_KEY] = state
        fields: dict[str, Any] = {}
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reply(send, state, BodyTooLarge(self.max_body_bytes))
        else:
            try:
                await self.app(
                    scope, self._limited(receive, started, state), self._recording(send, state)
                )
            except (BodyTooLarge, BodyTimeout) as error:  # raised outside a route
                await self._reply(send, state, error)
            except ClientDisconnect:
                fields["error"] = "the client left before sending the whole request"
                state["status"] = state["status"] or CLIENT_CLOSED
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
        log_request(
            {
                "method": scope["method"],
                "route": route,
                "status": status,
                "latency_ms": round(elapsed * 1000, 3),
                "records": state["records"],
                **fields,
            }
        )

    def _limited(self, receive: Receive, started: float, state: dict[str, Any]) -> Receive:
        """``receive``, refusing a body past the size limit or still arriving at the deadline."""
        received = 0
        deadline = started + self.body_timeout

        async def limited_receive() -> Message:
            nonlocal received
            if not state["body"]:  # after the body: waiting for a disconnect is not its time
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - time.perf_counter())
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                state["body"] = message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect
            return message

        return limited_receive

    @staticmethod
    def _recording(send: Send, state: dict[str, Any]) -> Send:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if state["body"]:  # answered before the body was read: do not wait for it
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        return recording_send

    async def _reply(self, send: Send, state: dict[str, Any], error: HTTPException) -> None:
        body = error_body(str(error.detail))
        await self._recording(send, state)(
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


CLOSE = (b"connection", b"close")
CLIENT_CLOSED = 499
"""Status logged (never sent) for a client that left mid-request (nginx's convention)."""
