"""Running the service under uvicorn, with limits that keep one client from holding it.

uvicorn closes idle keep-alive connections and caps concurrent connections, but waits forever
for a request's head: a client that connects and sends nothing (or half a header) keeps its
connection, and enough of them exhaust the process's file descriptors. :class:`GuardedH11Protocol`
adds that deadline; the body's deadline is enforced by the app's middleware
(:mod:`serving.observability`). It also refuses a request that gives both ``Content-Length``
and ``Transfer-Encoding`` (the framing a proxy and this server could read differently:
request smuggling), and closes a connection whose request body is still arriving (a 413 sent
before a huge body was read) the way nginx's lingering close does: it sends the answer, then
reads and discards what the client still sends, bounded in bytes and time, so that a client
that writes its whole body before reading gets the answer instead of a connection reset. Only
a body on its way lingers: a request head that cannot be parsed closes at once.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import tempfile
from functools import cache
from typing import Any, cast

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
DRAIN_BYTES = 64 * 1024 * 1024
"""At most this many bytes of a request body are read and discarded after an early answer
(a 413) before the connection is closed; it is closed after ``body_timeout`` seconds too."""
BOTH_FRAMINGS = (
    "Content-Length and Transfer-Encoding both given: the body's length is ambiguous "
    "(request smuggling); send one of them"
)
OLD_CHUNKED = (
    "Transfer-Encoding in an HTTP/1.0 request, which has no chunked framing: the body's "
    "length is ambiguous (request smuggling); send Content-Length"
)


class _StrictConnection(h11.Connection):
    """h11's server connection, refusing a request with both ``Content-Length`` and
    ``Transfer-Encoding`` (h11 lets the chunked framing win, as RFC 9112 allows; a proxy in
    front may have used the length), or an HTTP/1.0 request with ``Transfer-Encoding``
    (RFC 9112 6.1: its framing is faulty). The refusal's reason is kept for the 400."""

    refusal: str | None = None
    failed_in: object = None
    """The client's state (an h11 state) when what it sent could not be parsed: after that
    h11 says only ``ERROR``, and only a client failing in ``SEND_BODY`` was sending a body."""

    def next_event(self) -> Any:  # noqa: ANN401 - h11's event, or one of its sentinels
        """The next event; :class:`h11.RemoteProtocolError` for a request framed ambiguously."""
        before = self.their_state
        try:
            event = super().next_event()
        except h11.RemoteProtocolError:
            self.failed_in = before
            raise
        if isinstance(event, h11.Request):
            names = {name for name, _ in event.headers}
            if b"transfer-encoding" in names:
                if b"content-length" in names:
                    self.refusal = BOTH_FRAMINGS
                elif event.http_version == b"1.0":
                    self.refusal = OLD_CHUNKED
            if self.refusal is not None:
                raise h11.RemoteProtocolError(self.refusal, 400)
        return event


class _LingeringTransport:
    """The connection's transport as uvicorn's request cycles see it: closing it lingers (see
    :meth:`GuardedH11Protocol.close`); everything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        """Close as the protocol decides: at once, or after the rest of the body."""
        self._protocol.close()

    def is_closing(self) -> bool:
        """Closing, or lingering: no more answers on this connection."""
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the transport's attribute
        return getattr(self._transport, name)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's head (a connection that has
    not sent complete headers ``header_timeout`` seconds after it opened, or after its
    previous response, is closed) and a cap of ``max_connections`` open connections (one
    more is answered 503 and closed). Both answers, and uvicorn's own 400 for a request it
    cannot parse, are counted and logged like the app's. A request with both
    ``Content-Length`` and ``Transfer-Encoding`` (or an HTTP/1.0 one with
    ``Transfer-Encoding``) is such a 400, and a connection closed
    while its request's body still arrives lingers (:meth:`close`)."""

    _head_timer: asyncio.TimerHandle | None = None
    _linger_timer: asyncio.TimerHandle | None = None
    _drain_left = DRAIN_BYTES
    _shutting_down = False
    _raw: asyncio.Transport
    lingering = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - uvicorn's
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size
        self.conn = (
            _StrictConnection(h11.SERVER)
            if size is None
            else _StrictConnection(h11.SERVER, max_incomplete_event_size=size)
        )

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
        self._raw = transport
        if len(self.connections) > _settings().max_connections:
            reason = f"more than {_settings().max_connections} open connections"
            body = error_body(f"service overloaded: {reason}")
            transport.write(OVERLOADED % (len(body), body))
            transport.close()
            record_server_response(503, reason)
            return
        self.transport = cast("asyncio.Transport", _LingeringTransport(transport, self))
        self._arm()

    def close(self) -> None:
        """Close the connection: at once when the client is not sending a body (nothing more
        to send, or a request head that could not be parsed); else (an answer sent before the
        request's body was read, a body refused mid-way) after the answer, half-closing the
        connection and discarding what still arrives, until the client closes its end,
        :data:`DRAIN_BYTES` arrived or ``body_timeout`` passed."""
        transport = self._raw
        if self.lingering or transport.is_closing():
            return
        state: object = self.conn.their_state
        if state is h11.ERROR and isinstance(self.conn, _StrictConnection):
            state = self.conn.failed_in
        unread = state is h11.SEND_BODY
        if not unread or self._shutting_down or not transport.can_write_eof():
            transport.close()
            return
        self.lingering = True
        self._disarm()
        self._unset_keepalive_if_required()
        transport.write_eof()  # the answer, then end of file: the client can read it all
        transport.resume_reading()  # uvicorn pauses reading when a body piles up
        self._linger_timer = self.loop.call_later(_settings().body_timeout, transport.close)

    def shutdown(self) -> None:
        """The server stops: no lingering holds it."""
        self._shutting_down = True
        if self.lingering:
            self._raw.close()
            return
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        """Parse the request, or, lingering, discard what arrives (up to the bound)."""
        if not self.lingering:
            super().data_received(data)
            return
        self._drain_left -= len(data)
        if self._drain_left < 0:
            self._raw.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, counted and logged (with the reason
        when this server refused it, e.g. both framings)."""
        if isinstance(self.conn, _StrictConnection) and self.conn.refusal:
            msg = self.conn.refusal
        record_server_response(400, msg)
        super().send_400_response(msg)

    def handle_events(self) -> None:
        """Stop the deadline once a request's head has arrived."""
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        """A new deadline for the next request's head (pipelined ones disarm it at once)."""
        if not self.lingering:
            self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """No timer outlives its connection."""
        self._disarm()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
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
