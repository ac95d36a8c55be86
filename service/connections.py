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
from sanic.headers import format_http1_response
from sanic.helpers import has_message_body
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from service.errors import CODES

BUSY_BODY = b'{"message":"Too many connections, retry shortly","code":"' + CODES[503].encode() + b'"}'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
        b"connection: close\r\ncontent-length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY)


def field_int(value: str, base: int = 10) -> int:
    """A Content-Length (base 10) or a chunk size (base 16) as RFC 9112 writes them: digits of
    ASCII only (Python's int() also takes other scripts' digits, signs, underscores, "0x" and
    surrounding whitespace of any kind), trailing spaces or tabs allowed; else ValueError, which
    Sanic answers 400 and closes. The front reads a Content-Length with this one rule too."""
    digits = value.rstrip(" \t")
    if not digits or len(digits) > 16 or not (DECIMAL if base == 10 else HEX).issuperset(digits):
        raise ValueError(f"not a length: {value!r}")
    return int(digits, base)


DECIMAL, HEX = frozenset("0123456789"), frozenset("0123456789abcdefABCDEF")


class FinishingHttp(Http):
    """Sanic's HTTP/1.1 stream, finishing each response (request id, metrics, drain: the app's
    ctx.finish) as its head is written: once per response, errors Sanic answers itself included,
    at the cost of a call, where a response middleware costs two signal dispatches and a coroutine
    on top. A whole response (not streamed, not to HEAD, no 100-continue, no access log) has its
    head written here too, the same bytes as Sanic writes, in fewer steps (plain_head); any other
    is written by Sanic. Both with FINISH_IN_PROTOCOL; without it, Sanic's path alone."""

    __slots__ = ()

    def __init__(self, protocol: Any) -> None:
        super().__init__(protocol)  # type: ignore[no-untyped-call]
        self.init_for_request()  # type: ignore[no-untyped-call]  # its fields set before the task's first step

    def http1_response_header(self, data: bytes, end_stream: bool) -> Coroutine[Any, Any, None]:
        if self.request_body and self._discard_may_close():
            self.keep_alive = False  # the head says close
        res = self.response
        finish = self.protocol.app.ctx.finish
        if finish is None:  # FINISH_IN_PROTOCOL=false: a middleware finishes it, Sanic writes it
            return Http.http1_response_header(self, data, end_stream)
        if self.request is not None and res is not None:
            finish(self.request, res)
        if not data and res is not None and res.body:
            data, end_stream = res.body, True  # as Sanic takes a simple response's body
        if end_stream and data and res is not None and not (self.head_only or self.expecting_continue
                                                            or self.protocol.access_log):
            status = res.status
            if type(status) is int and status >= 200 and has_message_body(status):  # type: ignore[no-untyped-call]
                headers = res.headers
                headers["content-length"] = len(data)
                headers["connection"] = "keep-alive" if self.keep_alive else "close"
                head = plain_head(status, headers, res.content_type)
                if head is not None:
                    self.response_size = len(data)
                    self.response_func = None  # type: ignore[assignment]
                    return self._whole(head + data)
        # Looked up per call: Sanic rewrites the method on its class at start-up (its touch-ups).
        return Http.http1_response_header(self, data, end_stream)

    def _discard_may_close(self) -> bool:
        """May Sanic close the connection while it discards the unread body of a request answered
        early (a GET route, a 401, 404 or 405 written before the body is read)? It does on a
        chunked body it finds malformed once all of it is in (a trailer, a bad last line) or over
        the size limit, and on a Content-Length over the limit. A response that promised
        keep-alive and is followed by that close races a balancer that reuses connections: the
        request is whole, so HAProxy gives the idle connection to another client's request, meets
        the close, and drops that client's connection unanswered. Such a response says close
        instead. A Content-Length body within the limit is discarded without fail: only a stalled
        one is cut, at the request's deadline, before the request is whole, while no other request
        can be sent on the connection."""
        body: object = self.request_body  # True or "chunked" (Sanic annotates it bytes | None)
        return body == "chunked" or (self.request_bytes or 0) > self.protocol.request_max_size

    @staticmethod
    def _safe_int(value: str, base: int = 10) -> int:
        return field_int(value, base)  # Sanic's reading of Content-Length and chunk sizes, made strict

    async def _whole(self, response: bytes) -> None:
        await self._send(response)
        self.stage = Stage.IDLE


_STATUS_LINES: dict[int, bytes] = {}


def plain_head(status: int, headers: Any, content_type: str | None) -> bytes | None:
    """A response head as Sanic formats it (format_http1_response over processed_headers: the
    content type set last if absent, names and values as text without CR, LF or NUL), when every
    name and value is plain ASCII without those characters; else None (Sanic's path strips them
    one by one)."""
    headers.setdefault("content-type", content_type)
    lines = [f"{name}: {value}" for name, value in headers.items()]
    text = "".join(lines)
    if not text.isascii() or "\r" in text or "\n" in text or "\x00" in text:
        return None
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = format_http1_response(status, ())[:-2]
    return line + "\r\n".join(lines).encode("ascii") + b"\r\n\r\n"


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

    def waits_for_request(self) -> bool:
        """Is Sanic's connection task parked at the top of its loop, waiting for the first byte of
        a request? Only then does the next byte begin a request, for Sanic as for anything else
        reading this stream (the fast path, the deadline). Stage IDLE alone does not say so: Sanic
        is IDLE too while it discards the unread body of a request it has answered (a GET's body,
        a 401, 404 or 405 sent early), while it waits for a chunked body's last line, and after a
        response that closes the connection, until its task ends. In all of those the request is
        still set: Http.init_for_request clears it only just before the wait for the next one.
        A task that has not begun yet (no Http) will begin with that wait; one that has ended
        (Http gone) waits for nothing."""
        try:
            http = self._http
        except AttributeError:
            return self._task is not None and not self.recv_buffer
        return (http is not None and http.stage is Stage.IDLE and http.request is None
                and not self.recv_buffer and not self._data_received.is_set())

    def data_received(self, data: bytes) -> None:
        if self._began < 0:
            return
        if self.waits_for_request():
            self._began = monotonic()  # the first byte of a new request
        elif self._body_late():
            self._too_slow()  # a body still arriving (read or discarded) after the deadline
            return
        super().data_received(data)
        self._time = self._began  # Sanic's timers count from the request's first byte

    def _body_late(self) -> bool:
        """Is a request's body still being read, or discarded after an early response, past the
        request's deadline (REQUEST_TIMEOUT from its first byte)?"""
        http = self._http
        return (http is not None and bool(http.request_body)
                and monotonic() - self._began > self.request_timeout)

    def check_timeouts(self) -> None:
        """Sanic's periodic check, and the deadline of a body being discarded after its response:
        Sanic counts that stage (IDLE) against the keep-alive timeout only, so a body that stalls
        there would hold the connection past the request's deadline."""
        http = self._http
        if http is not None and http.stage is Stage.IDLE and self._task is not None and self._body_late():
            self._too_slow()
            return
        super().check_timeouts()  # type: ignore[no-untyped-call]

    def _too_slow(self) -> None:
        """Cut the request: before its response, Sanic answers 408 and closes; after it (a body
        being discarded), the connection closes."""
        if self._http is not None and self._task is not None:
            self._http.exception = RequestTimeout("Request Timeout")
            self._task.cancel("request deadline")

    def idle(self) -> bool:
        """No request in flight, nothing buffered."""
        return self.waits_for_request()

    def _make_room(self) -> bool:
        """Close the connection idle the longest."""
        idle = [c for c in self.connections if isinstance(c, GuardedProtocol) and c.idle()]
        if not idle:
            return False
        min(idle, key=lambda c: c._time).close()
        return True
