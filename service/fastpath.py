"""Cached searches answered from bytes at the protocol, before a Request exists (USE_FAST_HITS).

Most searches are hits, and a hit's body is already bytes in the worker's in-process page cache
(service/cache/local.py). Sanic spends more on parsing, routing, the Request and the response
objects than the hit itself costs, so this subclass of Sanic's HttpProtocol answers a hit as it
arrives: for a complete `GET /api/v1/search-tweets?...` HTTP/1.1 request whose bearer token is
already verified and cached, and whose page the timeline would answer from the in-process cache
right now (cache trusted: feed live, not dirty, breaker closed), it writes the response the
framework path writes, byte for byte but the X-Request-ID (tests/integration/test_fastpath.py).

Anything in doubt goes to Sanic, unchanged and in order: Sanic busy with a request or holding
unparsed bytes, a partial request, a body, Expect, Upgrade, a Connection header, HEAD, a path or
query outside the plain form below, a repeated header that matters, an unknown or expired token,
a page not cached, a transport that is not writable, a worker that is draining. Pipelined
requests are answered in order: the fast path answers a leading run of hits and hands the rest to
Sanic; once Sanic holds bytes, everything after them is Sanic's.

Invalidation needs nothing here: a page dropped from the in-process cache (a post on any worker,
a repair, a feed loss) is no longer answered, since every answer reads the cache at that moment.
"""

from __future__ import annotations

import re
from time import monotonic
from typing import Any

from sanic.http import Stage

from service.connections import GuardedProtocol
from service.errors import AppError
from service.validate import SearchQuery, search_query_string

SEARCH_PREFIX = b"GET /api/v1/search-tweets?"
ROUTE = "api/v1/search-tweets"  # the label the framework path counts it under in /metrics
# A query in plain form: what httptools and the fast path split alike (no fragment, no space).
PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_.~%+=&-]{1,1024}")
# Headers after which the request is Sanic's to answer.
DEFER = {"content-length", "transfer-encoding", "expect", "upgrade", "connection"}
ONCE = {"authorization", "x-request-id"}  # Sanic reads the first of these; a repeat goes to it
MAX_HEAD = 8192  # longer heads are Sanic's (it enforces its own limit)


def request_query(head: bytes) -> tuple[bytes, int] | None:
    """(raw query, end of the request line) of a plain HTTP/1.1 GET of the search route, else None."""
    if not head.startswith(SEARCH_PREFIX):
        return None
    line_end = head.find(b"\r\n")
    if line_end < 0 or head[line_end - 9:line_end] != b" HTTP/1.1":
        return None
    return head[len(SEARCH_PREFIX):line_end - 9], line_end


_QUERIES: dict[bytes, SearchQuery | None] = {}  # raw query -> the search it asks for (None: Sanic's)
MAX_QUERIES = 4096


def plain_query(raw: bytes) -> SearchQuery | None:
    """The search a raw query asks for, if it is in plain form and valid (else None: Sanic answers
    it, errors included). Remembered by its bytes, so a repeated query costs one dict lookup."""
    known = _QUERIES.get(raw, False)
    if known is not False:
        return known  # type: ignore[return-value]
    query = None
    if PLAIN_QUERY.fullmatch(raw):
        try:
            query = search_query_string(raw.decode("ascii"))
        except AppError:
            query = None
    if len(_QUERIES) >= MAX_QUERIES:
        _QUERIES.clear()
    _QUERIES[raw] = query
    return query


def bearer_and_id(head: bytes, line_end: int) -> tuple[str, str | None] | None:
    """(bearer token, X-Request-ID or None) from the header lines after the request line; None when
    a header leaves the request to Sanic, or there is no bearer token."""
    token = request_id = None
    for raw in head[line_end + 2:].split(b"\r\n"):
        name, colon, value = raw.partition(b":")
        if not colon:
            return None  # Sanic answers a malformed header line with 400
        key = name.decode("latin-1").lower()
        if key in DEFER:
            return None
        if key in ONCE:
            text = value.decode("latin-1").lstrip()
            if key == "authorization":
                scheme, _, given = text.partition(" ")
                if token is not None or scheme.lower() != "bearer" or not given:
                    return None
                token = given
            elif request_id is not None:
                return None
            else:
                request_id = text
    return None if token is None else (token, request_id)


def parse_head(head: bytes) -> tuple[SearchQuery, str, str | None] | None:
    """(search, token, X-Request-ID) of a request head the fast path may answer, else None."""
    line = request_query(head)
    query = None if line is None else plain_query(line[0])
    fields = None if line is None or query is None else bearer_and_id(head, line[1])
    return None if query is None or fields is None else (query, *fields)


def response(body: bytes, request_id: str) -> bytes:
    """A hit's whole response, as Sanic writes it for the search handler (keep-alive)."""
    return b"".join((b"HTTP/1.1 200 OK\r\nX-Cache: HIT\r\nX-Request-ID: ", request_id.encode("latin-1"),
                     b"\r\ncontent-length: ", str(len(body)).encode(),
                     b"\r\nconnection: keep-alive\r\ncontent-type: application/json\r\n\r\n", body))


class FastHitProtocol(GuardedProtocol):
    """Sanic's HTTP/1.1 protocol, answering cached searches itself (module docstring)."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        if data.startswith(SEARCH_PREFIX) and self._sanic_waits():
            data = self._answer_hits(data, monotonic())
            if not data:
                self._time = monotonic()  # the keep-alive timeout counts from here
                return
        super().data_received(data)

    def _sanic_waits(self) -> bool:
        """Is Sanic's connection task parked waiting for a new request, with nothing buffered,
        nothing to write first, and the worker not draining?"""
        http = self._http if hasattr(self, "_http") else None
        return (http is not None and http.stage is Stage.IDLE and not self.recv_buffer
                and not self._data_received.is_set() and self._can_write.is_set()
                and self.transport is not None and not self.transport.is_closing()
                and not self.app.ctx.stopping)

    def _answer_hits(self, data: bytes, arrived: float) -> bytes:
        """Answer the leading complete requests that are hits; return the bytes left for Sanic."""
        ctx: Any = self.app.ctx
        start = 0
        answered = []
        while start < len(data):
            end = data.find(b"\r\n\r\n", start, start + MAX_HEAD)
            if end < 0:
                break
            head = data[start:end]
            line = request_query(head)
            if line is None:
                break
            query = plain_query(line[0])
            if query is None:
                break
            # The page first: a search that misses pays nothing more. (A hit handed on below, for
            # its headers, has run a SLOWDOWN_HIT_US experiment's busy work twice.)
            body = ctx.timeline.cached_page(query)
            fields = None if body is None else bearer_and_id(head, line[1])
            if fields is None or ctx.tokens.cached(fields[0]) is None:
                break
            answered.append(response(body, ctx.request_id(fields[1])))
            start = end + 4
        if answered and self.transport is not None:
            self.transport.write(b"".join(answered))
            metrics = ctx.metrics
            if metrics is not None:
                seconds = monotonic() - arrived
                for _ in answered:
                    metrics.observe(ROUTE, "GET", 200, seconds, "HIT")
                metrics.fast_hits += len(answered)
        return data[start:] if start else data
