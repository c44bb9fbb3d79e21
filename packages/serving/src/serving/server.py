"""Running the service under uvicorn, with limits that keep one client from holding it.

uvicorn closes idle keep-alive connections and caps concurrent connections, but waits forever
for a request's head: a client that connects and sends nothing (or half a header) keeps its
connection, and enough of them exhaust the process's file descriptors. :class:`GuardedH11Protocol`
adds that deadline; the body's deadline is enforced by the app's middleware
(:mod:`serving.observability`).
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import tempfile
from functools import cache

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from serving.observability import MULTIPROCESS_DIR, error_body, record_server_response
from serving.settings import Settings


@cache
def _settings() -> Settings:
    return Settings()  # workers read their settings from SERVING_*, see serve()


OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's head (a connection that has
    not sent complete headers ``header_timeout`` seconds after it opened, or after its
    previous response, is closed) and a cap of ``max_connections`` open connections (one
    more is answered 503 and closed). Both answers, and uvicorn's own 400 for a request it
    cannot parse, are counted and logged like the app's."""

    _head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(_settings().header_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse a connection over the cap; else start the head deadline."""
        super().connection_made(transport)
        if len(self.connections) > _settings().max_connections:
            reason = f"more than {_settings().max_connections} open connections"
            body = error_body(f"service overloaded: {reason}")
            transport.write(OVERLOADED % (len(body), body))
            transport.close()
            record_server_response(503, reason)
            return
        self._arm()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, counted and logged."""
        record_server_response(400, msg)
        super().send_400_response(msg)

    def handle_events(self) -> None:
        """Stop the deadline once a request's head has arrived."""
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        """A new deadline for the next request's head (pipelined ones disarm it at once)."""
        self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """No timer outlives its connection."""
        self._disarm()
        super().connection_lost(exc)


def _raise_fd_limit(wanted: int) -> None:
    """Let the process hold ``wanted`` connections plus its own files, if the hard limit
    allows (many systems start services with a soft limit of 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted + 256 if hard == resource.RLIM_INFINITY else min(hard, wanted + 256)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(settings: Settings) -> None:
    """Run ``serving.app:app_from_env`` under uvicorn with the service's limits."""
    # Workers build their app (and read the head deadline) from SERVING_*: hand settings down.
    for name, value in settings.model_dump(exclude_none=True).items():
        os.environ[f"SERVING_{name.upper()}"] = str(value)
    _raise_fd_limit(settings.max_connections)
    if settings.workers > 1 and not os.environ.get(MULTIPROCESS_DIR):
        # One metrics directory for all workers, so /metrics reports the service's totals.
        directory = tempfile.mkdtemp(prefix="serving-metrics-")
        os.environ[MULTIPROCESS_DIR] = directory
        try:
            _run(settings)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            del os.environ[MULTIPROCESS_DIR]
        return
    _run(settings)


def _run(settings: Settings) -> None:
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the service logs one JSON line per request itself
        http=GuardedH11Protocol,
        timeout_keep_alive=settings.keep_alive_timeout,
    )
