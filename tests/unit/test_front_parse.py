"""What the front reads of a request head (service/http/parse.py, routes.py), and what it leaves to
Sanic."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from service.http.parse import Memo, field_int, header_fields
from service.http.routes import MAX_HEADS, MAX_QUERIES, MAX_REMEMBERED_HEAD, Posts, Searches, front_routes
from service.http.writer import X_CACHE, Responses
from service.metrics import Metrics

HEAD = b"GET /api/v1/search-tweets?tag=python&page=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc.def\r\n"
POST_LINE = b"POST /api/v1/tweet HTTP/1.1\r\n"


def head(*lines: bytes, line: bytes = b"GET /api/v1/search-tweets?tag=python HTTP/1.1") -> bytes:
    return b"\r\n".join((line, *lines))


def searches() -> Searches:
    return Searches(None)  # type: ignore[arg-type]  # reading heads needs no timeline


def bearer_and_id(raw: bytes, line_end: int) -> tuple[str, str | None] | None:
    fields = header_fields(raw, line_end, False)
    return None if fields is None else fields[:2]


def test_a_plain_search_is_read_whole() -> None:
    asked = searches().read(HEAD.rstrip(b"\r\n") + b"\r\nX-Request-ID: r-1")
    assert asked is not None and asked[0] is not None
    assert (asked[0].tag, asked[0].page, *asked[1:]) == ("python", 2, "abc.def", "r-1", 0)


def test_anything_else_is_left_to_sanic() -> None:
    auth = b"Authorization: Bearer t"
    for other in (head(auth, line=b"HEAD /api/v1/search-tweets?tag=a HTTP/1.1"),
                  head(auth, line=b"GET /api/v1/search-tweets?tag=a HTTP/1.0"),
                  head(auth, line=b"GET /api/v1/search-tweets/?tag=a HTTP/1.1"),
                  head(auth, line=b"GET /api/v1/search-tweetsX?tag=a HTTP/1.1"),
                  head(auth, line=b"GET /api/v1/search-tweets?tag=a#f HTTP/1.1"),
                  head(auth, line=b"GET /api/v1/search-tweets?tag=a b HTTP/1.1"),
                  head(auth, line=b"GET /api/v1/search-tweets?tag=caf\xc3\xa9 HTTP/1.1"),
                  head(auth, line=b"GET /api/v1/search-tweets?page=0&tag=a HTTP/1.1"),
                  head(auth, b"Content-Length: 0"), head(auth, b"Transfer-Encoding: chunked"),
                  head(auth, b"Expect: 100-continue"), head(auth, b"Upgrade: websocket"),
                  head(auth, b"Connection: close"), head(auth, b"connection: keep-alive"),
                  head(auth, auth), head(auth, b"X-Request-ID: a", b"x-request-id: b"),
                  head(b"Authorization: Basic dTpw"), head(b"Authorization: Bearer"), head(b"Host: x"),
                  head(auth, b"no colon here")):
        assert searches().read(other) is None, other


def test_header_names_are_matched_as_sanic_matches_them() -> None:
    line_end = len(head())
    assert bearer_and_id(head(b"AUTHORIZATION:   bearer tok"), line_end) == ("tok", None)
    assert bearer_and_id(head(b"Authorization: Bearer tok", b"X-Other: 1"), line_end) == ("tok", None)


def test_a_post_needs_one_plain_content_length_and_a_search_none() -> None:
    line = POST_LINE[:-2]
    posts = Posts(None, lambda b: b)  # type: ignore[arg-type]
    auth = b"Authorization: Bearer tok"
    read = posts.read(head(auth, b"Content-Length: 12", line=line))
    assert read == (None, "tok", None, 12)
    read = posts.read(head(auth, b"content-length:0", b"X-Request-ID: r", line=line))
    assert read == (None, "tok", "r", 0)
    for other in (head(auth, line=line), head(auth, b"Content-Length: 1", b"Content-Length: 1", line=line),
                  head(auth, b"Content-Length: -1", line=line), head(auth, b"Content-Length: 1e3", line=line),
                  head(auth, b"Content-Length: 1234567890", line=line),
                  head(auth, b"Content-Length: 3", b"Transfer-Encoding: chunked", line=line),
                  head(auth, b"Content-Length: 3", b"Expect: 100-continue", line=line),
                  head(b"Content-Length: 3", line=line),
                  head(auth, b"Content-Length: 3", line=b"POST /api/v1/tweet HTTP/1.0")):
        assert posts.read(other) is None, other
    assert header_fields(head(auth, b"Content-Length: 3"), len(head()), False) is None


def test_a_created_tweet_is_framed_as_the_handler_frames_it() -> None:
    responses = Responses(None, "p")
    assert responses.whole(201, b'{"data":{"id":1},"code":"success"}', "id-1") == (
        b"HTTP/1.1 201 Created\r\nX-Request-ID: id-1\r\ncontent-length: 34\r\nconnection: keep-alive\r\n"
        b'content-type: application/json\r\n\r\n{"data":{"id":1},"code":"success"}')
    responses.stopping = True  # draining: every answer says close
    assert b"connection: close\r\n" in responses.whole(201, b"{}", "id-1")


def test_queries_are_remembered_valid_or_not_and_bounded() -> None:
    s = searches()
    good = s.query(b"tag=%23Python&page_size=5")
    assert good is not None and (good.tag, good.page_size) == ("python", 5)
    assert s.query(b"tag=%23Python&page_size=5") is good  # the same object: one lookup
    assert s.query(b"tag=") is None and s.query(b"tag=") is None and len(s.queries) == 2
    for i in range(MAX_QUERIES + 10):
        s.query(f"tag=t{i}".encode())
    assert MAX_QUERIES // 2 <= len(s.queries) <= MAX_QUERIES


def test_the_response_is_framed_by_its_body() -> None:
    assert Responses(None, "p").whole(200, b'{"a":1}', "id-1", X_CACHE["HIT"]) == (
        b"HTTP/1.1 200 OK\r\nX-Cache: HIT\r\nX-Request-ID: id-1\r\ncontent-length: 7\r\n"
        b"connection: keep-alive\r\ncontent-type: application/json\r\n\r\n" b'{"a":1}')


def test_request_ids_are_the_clients_when_valid_else_the_workers_next() -> None:
    responses = Responses(None, "1f")
    assert responses.request_id("abc-1.x_Y") == "abc-1.x_Y"
    assert [responses.request_id(bad) for bad in (None, "", "a b", "é", "x" * 65)] == \
        ["1f-1", "1f-2", "1f-3", "1f-4", "1f-5"]


def test_a_decision_is_remembered_only_without_a_request_id_or_body_and_within_bounds() -> None:
    timeline: Any = SimpleNamespace(cached_page=lambda query, now: None)
    table = front_routes(timeline, lambda b: b, True, True, True)
    plain = HEAD.rstrip(b"\r\n")
    decided = table.decide(plain)
    assert decided is not None and decided[0].path == "/api/v1/search-tweets"
    assert table.decide(plain) is decided and len(table) == 1  # the same decision: one lookup
    assert table.decide(plain + b"\r\nX-Request-ID: r-1") is not None
    assert table.decide(plain + b"\r\nX-Pad: " + b"p" * MAX_REMEMBERED_HEAD) is not None
    post = POST_LINE + b"Authorization: Bearer t\r\nContent-Length: 2"
    assert table.decide(post) is not None and len(table) == 1  # none of those three is kept
    assert table.decide(b"GET /ping HTTP/1.1\r\nHost: x") is None
    for i in range(MAX_HEADS * 2):  # bounded; one used all along is kept
        table.decide(plain + f"\r\nX-N: {i}".encode())
        assert table.decide(plain) is decided
    assert len(table) <= MAX_HEADS and table.decide(plain) is decided


def test_a_memo_keeps_the_recently_used_within_its_size() -> None:
    memo: Memo[str, int] = Memo(4)
    for i, key in enumerate("abcd"):
        memo.put(key, i)
    assert memo.get("a") == 0  # older, used: moved to the newer generation
    memo.put("e", 4)
    memo.put("f", 5)
    assert len(memo) <= 4 and memo.get("a") == 0 and memo.get("b") is None and memo.get("f") == 5


def test_fast_hits_counted_together_equal_each_counted_alone(tmp_path: Path) -> None:
    together, alone = Metrics(tmp_path), Metrics(tmp_path)
    for seconds in (0.0004, 0.003, 0.2):
        together.observe("api/v1/search-tweets", "GET", 200, seconds, "HIT", 3)
        for _ in range(3):
            alone.observe("api/v1/search-tweets", "GET", 200, seconds, "HIT")
    assert together.requests == alone.requests and together.cache == alone.cache
    assert together.latency.keys() == alone.latency.keys()
    for route, row in together.latency.items():
        assert row[:-1] == alone.latency[route][:-1] and abs(row[-1] - alone.latency[route][-1]) < 1e-9
    front = Metrics(tmp_path)
    Responses(front, "p").count_hits("api/v1/search-tweets", 3, time.monotonic())
    assert front.fast_hits == 3 and front.requests == {("api/v1/search-tweets", "GET", 200): 3}
    assert front.cache == {"HIT": 3}


def test_a_head_with_bytes_outside_ascii_is_left_to_sanic() -> None:
    """Sanic decodes a head as UTF-8 and strips Unicode whitespace from values: latin-1 here read
    b"\\xa0Bearer" as "Bearer" where Sanic reads no bearer (and a proxy reading as Sanic would)."""
    line_end = len(head())
    for value in (b"\xa0Bearer tok", b"\x85Bearer tok", b"\xc2\xa0Bearer tok", b"Bearer\xa0tok"):
        assert searches().read(head(b"Authorization:" + value)) is None, value
        assert bearer_and_id(head(b"Authorization:" + value), line_end) is None, value
    assert searches().read(head(b"Authorization: Bearer tok", b"X-Request-ID:\xa0r1")) is None
    assert searches().read(head(b"Authorization: Bearer tok", b"X-Note: caf\xc3\xa9")) is None


def test_a_length_is_ascii_digits_only() -> None:
    """The rule the front and the framework (sanic_side.SanicHttp) both read a Content-Length by;
    the framework's 400 is tests/integration/test_framing.py's."""
    for good, value in (("5", 5), ("0", 0), ("05", 5), ("5 ", 5), ("5\t", 5), ("123456", 123456)):
        assert field_int(good) == value
    for bad in ("\u0665", "\uff15", "+5", "-5", "5.0", "1_0", "0x5", "", " ", "5\x0b", "5\x1c", "5, 5",
                "99999999999999999"):
        with pytest.raises(ValueError):
            field_int(bad)
    assert field_int("1aF", 16) == 0x1AF and field_int("5 ", 16) == 5
    for bad in ("0x5", "+5", "-1", "\u0665", " 5", "g"):
        with pytest.raises(ValueError):
            field_int(bad, 16)
    line_end = len(POST_LINE) - 2
    auth = b"Authorization: Bearer tok"
    post = POST_LINE[:-2]
    for length in ("\u0665".encode(), b"5\x0b", b"0x5"):
        assert header_fields(head(auth, b"Content-Length: " + length, line=post), line_end, True) is None
    assert header_fields(head(auth, b"Content-Length:\t5 ", line=post), line_end, True) == ("tok", None, 5)


def test_the_route_table_holds_what_is_switched_on() -> None:
    def table(*switches: bool) -> list[tuple[str, str, bool, bool]]:
        return [(r.method, r.path, r.page is not None, r.task is not None)
                for r in front_routes(timeline, lambda b: b, *switches).routes]

    timeline: Any = SimpleNamespace(cached_page=lambda query, now: None)

    assert table(True, True, True) == [("GET", "/api/v1/search-tweets", True, True),
                                       ("POST", "/api/v1/tweet", False, True)]
    assert table(False, True, False) == [("GET", "/api/v1/search-tweets", False, True)]
    assert table(True, False, False) == [("GET", "/api/v1/search-tweets", True, False)]
    assert table(False, False, False) == []
