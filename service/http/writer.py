"""Every response head the service writes, by one function (`head`), and each response finished
and counted in one place (`Responses`): the front's own answers, Sanic's responses (through
sanic_side.SanicHttp or the middleware), the 503 for too many connections and HAProxy's error
pages (ops/balancer.py). The bytes are those Sanic's formatter writes for the same response
(tests/unit/test_response_head.py compares them)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from time import monotonic
from typing import Any

from sanic.helpers import STATUS_CODES
from sanic.request import Request
from sanic.response import BaseHTTPResponse

from service.errors import CODES
from service.metrics import Metrics

JSON = "application/json"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
OWNED = frozenset({"x-request-id", "content-length", "connection"})  # what `head` itself writes
# Sanic's status lines (sanic.headers writes the same), indexed by status.
STATUS_LINES = [b"HTTP/1.1 %d %b\r\n" % (status, STATUS_CODES.get(status, b"UNKNOWN"))
                for status in range(1000)]
_KEEP_ALIVE = (b"\r\nconnection: close\r\n", b"\r\nconnection: keep-alive\r\n")
_ENDINGS: dict[str | None, bytes] = {None: b"\r\n", JSON: b"content-type: " + JSON.encode() + b"\r\n\r\n"}


def head(status: int, fields: bytes, request_id: str | None, length: int, keep_alive: bool,
         content_type: str | None = JSON, body: bytes = b"") -> bytes:
    """A response head, and `body` after it: the status line, the response's own header lines
    (`fields`, each ending in CRLF), X-Request-ID (if any), content-length, connection and
    content-type (None: among `fields`, or none), in the order Sanic writes them for a response
    finished by the service."""
    try:
        ending = _ENDINGS[content_type]
    except KeyError:
        ending = _ENDINGS[content_type] = b"content-type: " + str(content_type).encode("ascii") + b"\r\n\r\n"
    if request_id is None:
        return b"".join((STATUS_LINES[status], fields, b"content-length: ", str(length).encode(),
                         _KEEP_ALIVE[keep_alive], ending, body))
    return b"".join((STATUS_LINES[status], fields, b"X-Request-ID: ", request_id.encode("ascii"),
                     b"\r\ncontent-length: ", str(length).encode(), _KEEP_ALIVE[keep_alive], ending, body))


def fields_of(headers: Mapping[str, Any]) -> bytes | None:
    """A response's own header lines as Sanic writes them (name: value), when every name and value is
    plain ASCII without CR, LF or NUL and none is one `head` writes itself; else None (Sanic's
    formatter cleans such headers one by one: the response is left to it)."""
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}\r\n"
        if not line.isascii() or "\r" in line[:-2] or "\n" in line[:-2] or "\x00" in line \
                or name.lower() in OWNED:
            return None
        lines.append(line)
    return "".join(lines).encode("ascii")


X_CACHE = {state: b"X-Cache: %b\r\n" % state.encode() for state in ("HIT", "MISS", "BYPASS")}
_HIT_HEAD = STATUS_LINES[200] + X_CACHE["HIT"] + b"X-Request-ID: "  # head()'s order for a cached page
_KEEP_ALIVE_JSON = _KEEP_ALIVE[True] + _ENDINGS[JSON]


class Responses:
    """One worker's finishing of responses: the request id (the client's when it is a valid one,
    else this worker's next, pid-prefixed), the head (`head`), the count and time in /metrics, and
    `connection: close` once the worker drains."""

    __slots__ = ("_next", "_prefix", "metrics", "stopping")

    def __init__(self, metrics: Metrics | None, prefix: str) -> None:
        self.metrics = metrics
        self.stopping = False  # draining: every response says close
        self._prefix = prefix
        self._next = itertools.count(1)

    def request_id(self, incoming: str | None) -> str:
        if incoming is None or not REQUEST_ID.fullmatch(incoming):
            return f"{self._prefix}-{next(self._next)}"
        return incoming

    def whole(self, status: int, body: bytes, incoming_id: str | None, fields: bytes = b"",
              keep_alive: bool = True, content_type: str | None = JSON) -> bytes:
        """A whole response of the front, its head as Sanic writes the same response."""
        if incoming_id is None or not REQUEST_ID.fullmatch(incoming_id):
            incoming_id = f"{self._prefix}-{next(self._next)}"
        return head(status, fields, incoming_id, len(body), keep_alive and not self.stopping, content_type,
                    body)

    def page(self, body: bytes) -> bytes:
        """A cached page answered by the front, with this worker's next request id: the bytes of
        whole(200, body, None, X_CACHE["HIT"]) in one join (every hit makes it)."""
        if self.stopping:
            return self.whole(200, body, None, X_CACHE["HIT"])
        return b"".join((_HIT_HEAD, f"{self._prefix}-{next(self._next)}".encode(), b"\r\ncontent-length: ",
                         str(len(body)).encode(), _KEEP_ALIVE_JSON, body))

    def count(self, route: str, method: str, status: int, arrived: float | None, cache: str | None) -> None:
        """A response of Sanic's or of a front coroutine, timed from the arrival of its last bytes."""
        if self.metrics is not None:
            seconds = None if arrived is None else monotonic() - arrived
            self.metrics.observe(route, method, status, seconds, cache)

    def count_front(self, route: str, method: str, status: int, arrived: float, cache: str | None) -> None:
        """A response of a front coroutine (a lean search or post)."""
        metrics = self.metrics
        if metrics is not None:
            metrics.observe(route, method, status, monotonic() - arrived, cache)
            if method == "POST":
                metrics.lean_posts += 1
            else:
                metrics.lean_searches += 1

    def count_hits(self, route: str, n: int, arrived: float) -> None:
        """n cached pages answered by the front together."""
        metrics = self.metrics
        if metrics is not None:
            metrics.observe(route, "GET", 200, monotonic() - arrived, "HIT", n)
            metrics.fast_hits += n

    def finish_sanic(self, request: Request[Any, Any], response: BaseHTTPResponse) -> str:
        """What every response of Sanic's gets once, as its head is written (sanic_side.SanicHttp,
        or as a middleware): its request id (returned), its count and time, and the connection
        closed after it while draining (so keep-alive clients move off a busy connection, not cut
        at the graceful-shutdown deadline)."""
        request_id = self.request_id(request.headers.get("x-request-id"))
        if self.metrics is not None:
            route = request.route
            # Timed from the arrival of the request's last bytes: no request middleware, which
            # alone cost the cached search 4%.
            active = getattr(getattr(request.stream, "protocol", None), "last_active", None)
            self.count(route.path if route is not None else "unmatched", request.method, response.status,
                       None if active is None else active(), response.headers.get("x-cache"))
        if self.stopping:
            request.stream.keep_alive = False  # type: ignore[union-attr]
        return request_id

    def busy(self) -> bytes:
        """The answer to a connection over the worker's bound, before anything of it is read."""
        return self.whole(503, BUSY_BODY, None, b"Retry-After: 1\r\n", keep_alive=False)


BUSY_BODY = b'{"message":"Too many connections, retry shortly","code":"' + CODES[503].encode() + b'"}'
