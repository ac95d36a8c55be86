"""Cached searches answered from bytes at the protocol, before a Request exists (USE_FAST_HITS).

Most searches are hits, and a hit's body is already bytes in the worker's in-process page cache
(service/cache/local.py). Sanic spends more on parsing, routing, the Request and the response
objects than the hit itself costs, so this subclass of Sanic's HttpProtocol answers a hit as it
arrives: for a complete `GET /api/v1/search-tweets?...` HTTP/1.1 request whose bearer token is
already verified and cached, and whose page the timeline would answer from the in-process cache
right now (cache trusted: feed live, not dirty, breaker closed), it writes the response the
framework path writes, byte for byte but the X-Request-ID (tests/integration/test_fastpath.py).

Anything in doubt goes to Sanic, unchanged and in order: Sanic not waiting for a request's first
byte (GuardedProtocol.waits_for_request: a request in any stage, unparsed bytes, the body of an
answered request still being discarded), a head with bytes outside ASCII, a partial request, a
body, Expect, Upgrade, a Connection header, HEAD, a path or
query outside the plain form below, a repeated header that matters, an unknown or expired token,
a page not cached, a transport that is not writable, a worker that is draining. Pipelined
requests are answered in order: the fast path answers a leading run of hits and hands the rest to
Sanic; once Sanic holds bytes, everything after them is Sanic's.

Invalidation needs nothing here: a page dropped from the in-process cache (a post on any worker,
a repair, a feed loss) is no longer answered, since every answer reads the cache at that moment.

Lean searches (USE_LEAN_SEARCH): the same plain, authorised search whose page is not in the
worker (a miss, a cache switched off, a deep page) is answered here too, by a task that calls the
timeline as the handler does and writes the same bytes, without Sanic's request parsing, Request,
routing and response objects. While it runs, the connection's further bytes wait, in order (reading
pauses past a bound), and Sanic sees the connection busy (no keep-alive timeout, no shutdown or
connection-bound close). An error of the search is rendered by the app's one error renderer
(app.ctx.render_error) and written as Sanic writes a response, as a lean post's is: handed back to
Sanic, the search would run again and a client would wait out every deadline twice (a PostgreSQL
cut off: the pool's 2 s, then the statement's 5 s, once more).

Lean posts (USE_LEAN_POST): a `POST /api/v1/tweet` whose body has arrived whole (Content-Length,
within REQUEST_MAX_SIZE), with a verified token and a body that validates, is posted by a task
calling the timeline as the handler does. Whatever fails before the write (a header Sanic must
see, an unknown token, an invalid body) is Sanic's, unchanged, as for searches; an error of the
post itself cannot be run again (the tweet may be written), so it is rendered here by the app's
one error renderer (app.ctx.render_error) and written as Sanic writes a response.
"""

from __future__ import annotations

import asyncio
import re
from time import monotonic
from typing import Any

from sanic.headers import format_http1_response
from sanic.response import HTTPResponse

from service.connections import FinishingHttp, GuardedProtocol, field_int
from service.errors import AppError, success
from service.validate import NewTweet, SearchQuery, json_object, new_tweet, search_query_string

SEARCH_PREFIX = b"GET /api/v1/search-tweets?"
ROUTE = "api/v1/search-tweets"  # the label the framework path counts it under in /metrics
POST_LINE = b"POST /api/v1/tweet HTTP/1.1\r\n"
POST_ROUTE = "api/v1/tweet"
PREFIXES = (SEARCH_PREFIX, POST_LINE)
# A query in plain form: what httptools and the fast path split alike (no fragment, no space).
PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_.~%+=&-]{1,1024}")
# Headers after which the request is Sanic's to answer.
DEFER = {"content-length", "transfer-encoding", "expect", "upgrade", "connection"}
ONCE = {"authorization", "x-request-id"}  # Sanic reads the first of these; a repeat goes to it
MAX_LENGTH = 999_999_999  # a longer body is Sanic's (413 past REQUEST_MAX_SIZE)
MAX_HELD = 65536  # bytes held behind a lean search before reading pauses


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
    fields = header_fields(head, line_end, False)
    return None if fields is None else fields[:2]


def header_fields(head: bytes, line_end: int, with_body: bool) -> tuple[str, str | None, int] | None:
    """(bearer token, X-Request-ID or None, Content-Length) from the header lines after the request
    line; None when a header leaves the request to Sanic, or there is no bearer token. A request
    `with_body` must give one plain Content-Length; any other must give none. Heads with bytes
    outside ASCII are Sanic's: it decodes them as UTF-8 and strips Unicode whitespace (so
    latin-1 here would read b"\\xa0Bearer" as "Bearer", where Sanic reads no bearer at all)."""
    if not head.isascii():
        return None
    token = request_id = None
    length = -1
    for raw in head[line_end + 2:].split(b"\r\n"):
        name, colon, value = raw.partition(b":")
        if not colon:
            return None  # Sanic answers a malformed header line with 400
        key = name.decode("ascii").lower()
        if key == "content-length" and with_body and length < 0:
            try:  # the framework's own rule (FinishingHttp), after Sanic's lstrip
                length = field_int(value.decode("ascii").lstrip())
            except ValueError:
                return None
            if length > MAX_LENGTH:
                return None
            continue
        if key in DEFER:
            return None
        if key in ONCE:
            text = value.decode("ascii").lstrip()  # as Sanic takes a value
            if key == "authorization":
                scheme, _, given = text.partition(" ")
                if token is not None or scheme.lower() != "bearer" or not given:
                    return None
                token = given
            elif request_id is not None:
                return None
            else:
                request_id = text
    if token is None or (length < 0) == with_body:
        return None
    return token, request_id, length


def parse_head(head: bytes) -> tuple[SearchQuery, str, str | None] | None:
    """(search, token, X-Request-ID) of a request head the fast path may answer, else None."""
    line = request_query(head)
    query = None if line is None else plain_query(line[0])
    fields = None if line is None or query is None else bearer_and_id(head, line[1])
    return None if query is None or fields is None else (query, *fields)


KNOWN_HEADS: dict[bytes, tuple[SearchQuery, str, None]] = {}  # search head -> what parse_head made of it
MAX_HEADS, MAX_REMEMBERED_HEAD = 1024, 1024


def remember_head(head: bytes, parsed: tuple[SearchQuery, str, str | None]) -> None:
    """Keep what a search's head asks for, by its bytes, so a client repeating it (the same query
    and token) costs one dict lookup: only heads without an X-Request-ID (those with one are each
    new) and of a bounded size, at most MAX_HEADS of them."""
    query, token, request_id = parsed
    if request_id is None and len(head) <= MAX_REMEMBERED_HEAD:
        if len(KNOWN_HEADS) >= MAX_HEADS:
            KNOWN_HEADS.clear()
        KNOWN_HEADS[head] = (query, token, None)


def response(body: bytes, request_id: str, cache: str = "HIT", keep_alive: bool = True) -> bytes:
    """A search's whole response, as Sanic writes it for the search handler."""
    return b"".join((b"HTTP/1.1 200 OK\r\nX-Cache: ", cache.encode(), b"\r\nX-Request-ID: ",
                     request_id.encode("latin-1"), b"\r\ncontent-length: ", str(len(body)).encode(),
                     b"\r\nconnection: keep-alive" if keep_alive else b"\r\nconnection: close",
                     b"\r\ncontent-type: application/json\r\n\r\n", body))


def created(tweet: bytes, request_id: str, keep_alive: bool) -> bytes:
    """A post's 201, as Sanic writes it for the post handler."""
    body = success(tweet)
    return b"".join((b"HTTP/1.1 201 Created\r\nX-Request-ID: ", request_id.encode("latin-1"),
                     b"\r\ncontent-length: ", str(len(body)).encode(),
                     b"\r\nconnection: keep-alive" if keep_alive else b"\r\nconnection: close",
                     b"\r\ncontent-type: application/json\r\n\r\n", body))


def written(res: HTTPResponse, request_id: str, keep_alive: bool) -> bytes:
    """Any response as Sanic writes it (Http.http1_response_header), finished as the app finishes
    each (the request id first)."""
    body = res.body or b""
    res.headers["X-Request-ID"] = request_id
    res.headers["content-length"] = len(body)
    res.headers["connection"] = "keep-alive" if keep_alive else "close"
    return format_http1_response(res.status, res.processed_headers) + body


class FastHitProtocol(GuardedProtocol):
    """Sanic's HTTP/1.1 protocol, answering cached searches, and lean searches, itself (module
    docstring)."""

    __slots__ = ("_held", "_hits", "_lean", "_lean_on", "_posting", "_posts_on")

    def connection_made(self, transport: Any) -> None:
        ctx: Any = self.app.ctx
        self._hits, self._lean_on, self._posts_on = ctx.fast_hits, ctx.lean_search, ctx.lean_post
        self._lean: asyncio.Task[None] | None = None  # the lean search or post under way
        self._posting = False  # ... and it is a post
        self._held = b""  # bytes that arrived behind it
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lean is not None:
            if not self._posting:  # a post runs to its end: committed, it must reach the cache
                self._lean.cancel()
            self._lean = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lean is not None:
            self._hold(data)
            return
        if data.startswith(PREFIXES) and self._may_answer():
            data = self._answer(data, monotonic())
            if not data:
                self._time = monotonic()  # the keep-alive timeout counts from here
                return
        super().data_received(data)

    def idle(self) -> bool:
        return self._lean is None and super().idle()

    def close_if_idle(self) -> bool:
        return False if self._lean is not None else bool(super().close_if_idle())

    def _may_answer(self) -> bool:
        """Does the next byte begin a request (Sanic waits for one: GuardedProtocol.waits_for_request),
        with nothing to write first and the worker not draining?"""
        return (self.waits_for_request() and self._can_write.is_set() and self.transport is not None
                and not self.transport.is_closing() and not self.app.ctx.stopping)

    def _answer(self, data: bytes, arrived: float) -> bytes:
        """Answer the leading complete requests that are hits, and start a lean search for the
        first that is not; return the bytes left for Sanic."""
        ctx: Any = self.app.ctx
        start = 0
        answered: list[bytes] = []
        while start < len(data):
            # A head as long as Sanic's limit or longer is Sanic's (it answers 413)
            end = data.find(b"\r\n\r\n", start, start + FinishingHttp.HEADER_MAX_SIZE)
            if end < 0:
                break
            head = data[start:end]
            parsed: tuple[SearchQuery, str, str | None] | None = KNOWN_HEADS.get(head)
            if parsed is None:
                if head.startswith(POST_LINE):
                    if self._posts_on and self._post_whole(data, start, end, arrived, answered):
                        return b""
                    break
                parsed = parse_head(head)
                if parsed is None:
                    break
                remember_head(head, parsed)
            query, token, request_id = parsed
            if ctx.tokens.cached(token) is None:
                break
            body = ctx.timeline.cached_page(query) if self._hits else None
            if body is None:
                if not self._lean_on:
                    break
                self._write(answered, arrived)
                answered = []
                self._held = data[end + 4:]
                self._lean = asyncio.get_running_loop().create_task(self._search(query, request_id, arrived))
                self._posting = False
                return b""
            answered.append(response(body, ctx.request_id(request_id)))
            start = end + 4
        self._write(answered, arrived)
        return data[start:] if start else data

    def _post_whole(self, data: bytes, start: int, end: int, arrived: float, answered: list[bytes]) -> bool:
        """Start a lean post for the request whose head ends at `end`, if it may be one (module
        docstring), after writing what was answered before it; else False (it is Sanic's)."""
        ctx: Any = self.app.ctx
        fields = header_fields(data[start:end], len(POST_LINE) - 2, True)
        if fields is None:
            return False
        token, request_id, length = fields
        user = ctx.tokens.cached(token)
        body_end = end + 4 + length
        if user is None or length > self.app.config.REQUEST_MAX_SIZE or body_end > len(data):
            return False
        try:
            new = new_tweet(json_object(data[end + 4:body_end], ctx.codec.loads))
        except AppError:
            return False  # Sanic answers it, the one way
        self._write(answered, arrived)
        self._held = data[body_end:]
        self._lean = asyncio.get_running_loop().create_task(self._post(user, new, request_id, arrived))
        self._posting = True
        return True

    async def _post(self, user: Any, new: NewTweet, request_id: str | None, arrived: float) -> None:
        """A lean post: the timeline's answer written as the handler's; its errors rendered by the
        app's error renderer, written as Sanic writes them."""
        ctx: Any = self.app.ctx
        try:
            tweet = await ctx.timeline.post_unshielded(user, new)  # never cancelled (connection_lost)
        except Exception as exc:
            res = ctx.render_error(exc)
            status = res.status
            answer = written(res, ctx.request_id(request_id), not ctx.stopping)
        else:
            status, answer = 201, created(tweet, ctx.request_id(request_id), not ctx.stopping)
        self._finish(answer, POST_ROUTE, "POST", status, arrived, None)

    def _finish(self, answer: bytes, route: str, method: str, status: int, arrived: float,
                cache: str | None) -> None:
        """Write a lean answer, count it, and go on reading (or close, while draining: the answer
        said so, as the framework path's does)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self._lean = None
            return
        transport.write(answer)
        metrics = self.app.ctx.metrics
        if metrics is not None:
            metrics.observe(route, method, status, monotonic() - arrived, cache)
            if route == POST_ROUTE:
                metrics.lean_posts += 1
            else:
                metrics.lean_searches += 1
        if self.app.ctx.stopping:
            self._lean = None
            transport.close()
            return
        self._resume()

    def _write(self, answered: list[bytes], arrived: float) -> None:
        if answered and self.transport is not None:
            self.transport.write(b"".join(answered))
            metrics = self.app.ctx.metrics
            if metrics is not None:
                metrics.observe_fast_hits(ROUTE, len(answered), monotonic() - arrived)

    async def _search(self, query: SearchQuery, request_id: str | None, arrived: float) -> None:
        """A lean search: the timeline's answer written as the handler's; its errors rendered by the
        app's error renderer, written as Sanic writes them."""
        ctx: Any = self.app.ctx
        try:
            body, cache = await ctx.timeline.search(query)
        except Exception as exc:
            res = ctx.render_error(exc)
            answer = written(res, ctx.request_id(request_id), not ctx.stopping)
            self._finish(answer, ROUTE, "GET", res.status, arrived, None)
            return
        answer = response(body, ctx.request_id(request_id), cache, keep_alive=not ctx.stopping)
        self._finish(answer, ROUTE, "GET", 200, arrived, cache)

    def _resume(self) -> None:
        """The lean request is over: what waited behind it is read as it arrives."""
        self._lean = None
        held, self._held = self._held, b""
        self._time = monotonic()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            if held:
                self.data_received(held)

    def _hold(self, data: bytes) -> None:
        self._held += data
        if len(self._held) > MAX_HELD and self.transport is not None:
            self.transport.pause_reading()
