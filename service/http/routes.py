"""The front's route table: the requests the front answers itself, each by (method, path), with
what it reads of the request and how it answers. A cached page is a plain function (answered
at once, in the bytes' order); the rest are coroutines (a task, the connection's later bytes
waiting behind it). A request no entry takes, or one whose entry declines it (a header Sanic
must see, an unknown token, an invalid query or body, a page not cached where no coroutine is
on), is Sanic's: the framework's routes (service/api) answer it, errors included.

The paths are declared once, for these routes and the Sanic ones (service/api/paths.py)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service.api.paths import POST_PATH, SEARCH_PATH
from service.errors import AppError, success
from service.http.parse import PLAIN_QUERY, Memo, header_fields, target
from service.http.writer import X_CACHE
from service.security.tokens import Identity
from service.timeline import Timeline
from service.validate import NewTweet, SearchQuery, json_object, new_tweet, search_query_string

T = TypeVar("T")
MAX_QUERIES, MAX_HEADS, MAX_REMEMBERED_HEAD = 4096, 1024, 1024


# What a coroutine's request is answered with: status, body, the response's own header lines and
# X-Cache (a plain tuple: a NamedTuple's constructor is a Python call on every request).
Answer = tuple[int, bytes, bytes, str | None]


# What a request head asks of a route: its argument (None: the body says), bearer token,
# X-Request-ID and body length (0 without a body). A plain tuple, made on every post and miss.
Asked = tuple[T | None, str, str | None, int]


@dataclass(frozen=True, slots=True)
class Route(Generic[T]):
    method: str
    path: str
    read: Callable[[bytes], Asked[T] | None]  # a head (request line and headers) -> what it asks, or None
    body: Callable[[bytes], T | None] | None  # a whole body -> the argument, or None (Sanic's)
    page: Callable[[T, float], bytes | None] | None  # the answer from memory at a monotonic time, or None
    # A coroutine (the timeline's own, no layer around it) and how its result is answered.
    task: Callable[[T, Identity], Coroutine[Any, Any, Any]] | None
    answer: Callable[[Any], Answer]
    shielded: bool  # the task runs to its end if the client goes (a post: committed, it must reach the cache)
    # Derived from method and path: how its request lines begin, and the route as /metrics counts
    # it (Sanic's pattern for the same path, without the leading slash).
    line: bytes = b""
    label: str = ""

    def __post_init__(self) -> None:
        line = f"{self.method} {self.path}{' ' if self.body is not None else '?'}".encode("ascii")
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "label", self.path.lstrip("/"))


class Searches:
    """GET SEARCH_PATH: a plain query and a bearer token; the page from the worker's cache, or the
    timeline's search. What a query asks is remembered by its bytes (a bounded memo)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.prefix = f"GET {SEARCH_PATH}?".encode("ascii")
        self.queries: Memo[bytes, tuple[SearchQuery | None]] = Memo(MAX_QUERIES)

    def query(self, raw: bytes) -> SearchQuery | None:
        """The search a raw query asks for, if it is in plain form and valid (else None: Sanic's)."""
        known = self.queries.get(raw)
        if known is None:
            query = None
            if PLAIN_QUERY.fullmatch(raw):
                try:
                    query = search_query_string(raw.decode("ascii"))
                except AppError:
                    query = None
            self.queries.put(raw, known := (query,))
        return known[0]

    def read(self, head: bytes) -> Asked[SearchQuery] | None:
        line = target(head, self.prefix)
        query = None if line is None else self.query(line[0])
        fields = None if line is None or query is None else header_fields(head, line[1], False)
        return None if query is None or fields is None else (query, fields[0], fields[1], 0)

    def search(self, query: SearchQuery, user: Identity) -> Coroutine[Any, Any, tuple[bytes, str]]:
        return self.timeline.search(query)

    @staticmethod
    def answer(found: tuple[bytes, str]) -> Answer:
        return 200, found[0], X_CACHE[found[1]], found[1]


class Posts:
    """POST POST_PATH: a Content-Length body that validates, and a bearer token; the timeline's post."""

    def __init__(self, timeline: Timeline, loads: Callable[[bytes], Any]) -> None:
        self.timeline = timeline
        self.loads = loads
        self.line = f"POST {POST_PATH} HTTP/1.1\r\n".encode("ascii")

    def read(self, head: bytes) -> Asked[NewTweet] | None:
        if not head.startswith(self.line):
            return None
        fields = header_fields(head, len(self.line) - 2, True)
        return None if fields is None else (None, *fields)

    def body(self, body: bytes) -> NewTweet | None:
        try:
            return new_tweet(json_object(body, self.loads))
        except AppError:
            return None  # Sanic answers it, the one way

    def post(self, new: NewTweet, user: Identity) -> Coroutine[Any, Any, bytes]:
        return self.timeline.post_unshielded(user, new)

    @staticmethod
    def answer(tweet: bytes) -> Answer:
        return 201, success(tweet), b"", None


Decision = tuple[Route[Any], Asked[Any]]


class Table(Memo[bytes, Decision]):
    """One worker's route table, and the one decision per request head: the route that takes it and
    what it asks, or None (Sanic's). A decision that holds for every request with the same head
    bytes (no X-Request-ID, no body, within MAX_REMEMBERED_HEAD) is remembered: a client
    repeating a search costs one dict lookup."""

    __slots__ = ("prefixes", "routes")

    def __init__(self, routes: tuple[Route[Any], ...]) -> None:
        super().__init__(MAX_HEADS)
        self.routes = routes
        self.prefixes = tuple(route.line for route in routes)  # what a head must begin with

    def decide(self, head: bytes) -> Decision | None:
        decided = self.recent.get(head)
        if decided is not None:
            return decided
        decided = self.older.pop(head, None)
        if decided is None:
            for route in self.routes:
                if head.startswith(route.line):
                    asked = route.read(head)
                    if asked is None:
                        return None
                    decided = route, asked
                    if asked[2] is not None or asked[3] or len(head) > MAX_REMEMBERED_HEAD:
                        return decided  # an X-Request-ID or a body: this request's alone
                    break
            else:
                return None
        self.put(head, decided)
        return decided



def front_routes(timeline: Timeline, loads: Callable[[bytes], Any], pages: bool, searches: bool,
                 posts: bool) -> Table:
    """One worker's table: cached pages (USE_FAST_HITS, where pages are kept in process), other
    searches (USE_LEAN_SEARCH) and posts (USE_LEAN_POST); a route with nothing on is not in it."""
    table: list[Route[Any]] = []
    if pages or searches:
        s = Searches(timeline)
        search: Route[SearchQuery] = Route("GET", SEARCH_PATH, s.read, None,
                                           timeline.cached_page if pages else None,
                                           s.search if searches else None, s.answer, False)
        table.append(search)
    if posts:
        p = Posts(timeline, loads)
        post: Route[NewTweet] = Route("POST", POST_PATH, p.read, p.body, None, p.post, p.answer,
                                      True)
        table.append(post)
    return Table(tuple(table))
