"""Sanic's HTTP/1.1 protocol with two guards every worker needs against slow or many clients, and
each response finished as its head is written (FinishingHttp).

- A deadline per request, counted from its first byte: Sanic restarts REQUEST_TIMEOUT on every
  byte received, so a client sending one byte every few seconds held its socket (and a slot of
  the worker) forever. Here the head, and the body, must arrive within REQUEST_TIMEOUT of the
  request's first byte, however they trickle: a head late is answered 408 by Sanic's own timer
  (it reads the request's start), a body still arriving after the deadline is cut at its next
  byte the same way. Handlers keep RESPONSE_TIMEOUT, also counted from the first byte.
- A bound on the connections a worker holds (WORKER_MAX_CONNECTIONS): at the bound, a new
  connection takes the place of the longest-idle keep-alive connection (nothing in flight there:
  clients reconnect, as after a keep-alive timeout); when none is idle, it is answered 503 with
  Retry-After and closed, before anything of it is read.
"""

from __future__ import annotations

from collections.abc import Coroutine
from time import monotonic
from typing import Any

from sanic.exceptions import RequestTimeout
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from service.errors import CODES

BUSY_BODY = b'{"message":"Too many connections, retry shortly","code":"' + CODES[503].encode() + b'"}'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
        b"connection: close\r\ncontent-length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY)


class FinishingHttp(Http):
    """Sanic's HTTP/1.1 stream, finishing each response (request id, metrics, drain: the app's
    ctx.finish) as its head is written: once per response, errors Sanic answers itself included,
    at the cost of a call, where a response middleware costs two signal dispatches and a coroutine
    on top (FINISH_IN_PROTOCOL)."""

    __slots__ = ()

    def http1_response_header(self, data: bytes, end_stream: bool) -> Coroutine[Any, Any, None]:
        finish = self.protocol.app.ctx.finish
        if finish is not None and self.request is not None and self.response is not None:
            finish(self.request, self.response)
        # Looked up per call: Sanic rewrites the method on its class at start-up (its touch-ups).
        return Http.http1_response_header(self, data, end_stream)


class GuardedProtocol(HttpProtocol):
    """Sanic's HttpProtocol with a whole-request deadline and a connection bound (module docstring)."""

    HTTP_CLASS = FinishingHttp
    __slots__ = ("_began",)

    def connection_made(self, transport: Any) -> None:
        self._began = 0.0
        if len(self.connections) >= self.app.config.WORKER_MAX_CONNECTIONS and not self._make_room():
            self._began = -1.0  # refused: Sanic never sees it
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[no-untyped-call]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._began >= 0:
            super().connection_lost(exc)  # type: ignore[no-untyped-call]

    def data_received(self, data: bytes) -> None:
        if self._began < 0:
            return
        http = getattr(self, "_http", None)
        stage = http.stage if http is not None else Stage.IDLE
        if stage is Stage.IDLE and not self.recv_buffer:
            self._began = monotonic()  # the first byte of a new request
        elif stage is Stage.HANDLER and http is not None and http.request_body \
                and monotonic() - self._began > self.request_timeout:
            self._too_slow()  # the body still arriving after the deadline
            return
        super().data_received(data)
        self._time = self._began  # Sanic's timers count from the request's first byte

    def _too_slow(self) -> None:
        if self._http is not None and self._task is not None:
            self._http.exception = RequestTimeout("Request Timeout")
            self._task.cancel("request deadline")

    def idle(self) -> bool:
        """No request in flight, nothing buffered."""
        return self._http is not None and self._http.stage is Stage.IDLE and not self.recv_buffer

    def _make_room(self) -> bool:
        """Close the connection idle the longest."""
        idle = [c for c in self.connections if isinstance(c, GuardedProtocol) and c.idle()]
        if not idle:
            return False
        min(idle, key=lambda c: c._time).close()
        return True
