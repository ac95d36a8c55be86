"""The only module that touches Sanic's private names: its HTTP/1.1 protocol and stream, seen
through a few small operations the front (protocol.py) is built on. Written and tested against
the Sanic versions in TESTED; under any other, `supported()` is False and the service runs on
Sanic's own protocol, without the front (service/app.py says so at start-up).

To move to a new Sanic: read this module against Sanic's server/protocols/http_protocol.py and
http/http1.py, then run tests/integration/test_framing.py (the hostile-request corpus, front
on against front off), test_fastpath.py, test_slow_clients.py and tests/unit/test_response_head.py."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import sanic
from sanic.exceptions import RequestTimeout
from sanic.helpers import has_message_body
from sanic.http import Http, Stage
from sanic.request import Request
from sanic.response import BaseHTTPResponse
from sanic.server.protocols.http_protocol import HttpProtocol

from service.http.parse import field_int
from service.http.writer import fields_of, head

TESTED = ("25.12",)  # the Sanic minors this module was written and tested against
SanicProtocol = HttpProtocol  # Sanic's own: what a worker serves with under other versions


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def supported(version: str = sanic.__version__) -> bool:
    return minor(version) in TESTED


# What finishes a response of Sanic's (writer.Responses.finish_sanic): its request id, counted.
Finish = Callable[[Request[Any, Any], BaseHTTPResponse], str]


class SanicHttp(Http):
    """Sanic's HTTP/1.1 stream, finishing each response (request id, metrics, drain) as its head is
    written: once per response, errors Sanic answers itself included, at the cost of a call where
    a response middleware costs two signal dispatches and a coroutine on top. A whole response
    (not streamed, not to HEAD, no 100-continue, no access log) has its head written by
    writer.head, the same bytes as Sanic writes; any other is written by Sanic. Content-Length and
    chunk sizes are read by parse.field_int (ASCII digits only)."""

    __slots__ = ()

    def __init__(self, protocol: Any) -> None:
        super().__init__(protocol)  # type: ignore[no-untyped-call]
        self.init_for_request()  # type: ignore[no-untyped-call]  # its fields set before the task's first step

    def http1_response_header(self, data: bytes, end_stream: bool) -> Coroutine[Any, Any, None]:
        if self.request_body and self._discard_may_close():
            self.keep_alive = False  # the head says close
        res = self.response
        finish: Finish | None = getattr(self.protocol, "finish", None)
        if finish is None or self.request is None or res is None:
            return Http.http1_response_header(self, data, end_stream)
        request_id = finish(self.request, res)
        if not data and res.body:
            data, end_stream = res.body, True  # as Sanic takes a simple response's body
        status = res.status
        plain = type(status) is int and status >= 200 and status != 412 and has_message_body(status)  # type: ignore[no-untyped-call]
        if end_stream and data and plain and not (self.head_only or self.expecting_continue
                                                  or self.protocol.access_log):
            fields = fields_of(res.headers)
            if fields is not None:
                self.response_size = len(data)
                self.response_func = None  # type: ignore[assignment]
                content_type = None if "content-type" in res.headers else res.content_type
                whole = head(status, fields, request_id, len(data), bool(self.keep_alive), content_type, data)
                return self._whole(whole)
        res.headers["X-Request-ID"] = request_id
        # Looked up per call: Sanic rewrites the method on its class at start-up (its touch-ups).
        return Http.http1_response_header(self, data, end_stream)

    def _discard_may_close(self) -> bool:
        """May Sanic close the connection while it discards the unread body of a request answered
        early (a GET route, a 401, 404 or 405 written before the body is read)? It does on a
        chunked body it finds malformed once all of it is in (a trailer, a bad last line) or over
        the size limit, and on a Content-Length over the limit. A response that promised
        keep-alive and is followed by that close races a balancer that reuses connections
        (HAProxy gives the idle connection to another client's request, meets the close, and
        drops that client's connection unanswered): such a response says close instead."""
        body: object = self.request_body  # True or "chunked" (Sanic annotates it bytes | None)
        return body == "chunked" or (self.request_bytes or 0) > self.protocol.request_max_size

    @staticmethod
    def _safe_int(value: str, base: int = 10) -> int:
        return field_int(value, base)  # Sanic's reading of Content-Length and chunk sizes, made strict

    async def _whole(self, response: bytes) -> None:
        await self._send(response)
        self.stage = Stage.IDLE


class SanicConnection(HttpProtocol):
    """Sanic's HttpProtocol, and what the front asks of its state."""

    HTTP_CLASS = SanicHttp
    __slots__ = ("finish",)

    def waits_for_request(self) -> bool:
        """Is Sanic's connection task parked at the top of its loop, waiting for the first byte of
        a request? Only then does the next byte begin a request, for Sanic as for anything else
        reading this stream. Stage IDLE alone does not say so: Sanic is IDLE too while it discards
        the unread body of a request it has answered (a GET's body, a 401, 404 or 405 sent early),
        while it waits for a chunked body's last line, and after a response that closes the
        connection, until its task ends. In all of those the request is still set:
        Http.init_for_request clears it only just before the wait for the next one. A task that
        has not begun yet (no Http) will begin with that wait; one that has ended waits for nothing."""
        try:
            http = self._http
        except AttributeError:
            return self._task is not None and not self.recv_buffer
        return (http is not None and http.stage is Stage.IDLE and http.request is None
                and not self.recv_buffer and not self._data_received.is_set())

    def reads_body(self) -> bool:
        """Is a request's body being read, or discarded after an early response?"""
        http = self._http
        return http is not None and bool(http.request_body)

    def discards_body(self) -> bool:
        """... discarded after its response (Sanic's stage IDLE, its task running)?"""
        http = self._http
        return (http is not None and http.stage is Stage.IDLE and self._task is not None
                and bool(http.request_body))

    def cut(self) -> None:
        """End the request: before its response, Sanic answers 408 and closes; after it, the
        connection closes."""
        if self._http is not None and self._task is not None:
            self._http.exception = RequestTimeout("Request Timeout")
            self._task.cancel("request deadline")

    def writable(self) -> bool:
        return self._can_write.is_set() and self.transport is not None and not self.transport.is_closing()

    def last_active(self) -> float:
        """Where Sanic's request, response and keep-alive timers count from."""
        return self._time

    def active_at(self, when: float) -> None:
        self._time = when
