"""What the protocol's fast path reads of a request head, and what it leaves to Sanic."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import fastpath
from service.connections import field_int
from service.fastpath import (
    POST_LINE,
    bearer_and_id,
    created,
    header_fields,
    parse_head,
    plain_query,
    remember_head,
    request_query,
    response,
)
from service.metrics import Metrics

HEAD = b"GET /api/v1/search-tweets?tag=python&page=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc.def\r\n"


def head(*lines: bytes, line: bytes = b"GET /api/v1/search-tweets?tag=python HTTP/1.1") -> bytes:
    return b"\r\n".join((line, *lines))


def test_a_plain_search_is_read_whole() -> None:
    parsed = parse_head(HEAD.rstrip(b"\r\n") + b"\r\nX-Request-ID: r-1")
    assert parsed is not None
    query, token, rid = parsed
    assert (query.tag, query.page, token, rid) == ("python", 2, "abc.def", "r-1")
    assert request_query(HEAD) == (b"tag=python&page=2", HEAD.find(b"\r\n"))


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
        assert parse_head(other) is None, other


def test_header_names_are_matched_as_sanic_matches_them() -> None:
    line_end = len(head())
    assert bearer_and_id(head(b"AUTHORIZATION:   bearer tok"), line_end) == ("tok", None)
    assert bearer_and_id(head(b"Authorization: Bearer tok", b"X-Other: 1"), line_end) == ("tok", None)


def test_a_post_needs_one_plain_content_length_and_a_search_none() -> None:
    line = b"POST /api/v1/tweet HTTP/1.1"
    line_end = len(line)
    auth = b"Authorization: Bearer tok"
    assert header_fields(head(auth, b"Content-Length: 12", line=line), line_end, True) == ("tok", None, 12)
    assert header_fields(head(auth, b"content-length:0", b"X-Request-ID: r", line=line), line_end, True) \
        == ("tok", "r", 0)
    for other in (head(auth, line=line), head(auth, b"Content-Length: 1", b"Content-Length: 1", line=line),
                  head(auth, b"Content-Length: -1", line=line), head(auth, b"Content-Length: 1e3", line=line),
                  head(auth, b"Content-Length: 1234567890", line=line),
                  head(auth, b"Content-Length: 3", b"Transfer-Encoding: chunked", line=line),
                  head(auth, b"Content-Length: 3", b"Expect: 100-continue", line=line),
                  head(b"Content-Length: 3", line=line)):
        assert header_fields(other, line_end, True) is None, other
    assert header_fields(head(auth, b"Content-Length: 3"), len(head()), False) is None


def test_a_created_tweet_is_framed_as_the_handler_frames_it() -> None:
    assert created(b'{"id":1}', "id-1", True) == (
        b"HTTP/1.1 201 Created\r\nX-Request-ID: id-1\r\ncontent-length: 34\r\nconnection: keep-alive\r\n"
        b'content-type: application/json\r\n\r\n{"data":{"id":1},"code":"success"}')


def test_queries_are_remembered_valid_or_not() -> None:
    good = plain_query(b"tag=%23Python&page_size=5")
    assert good is not None and (good.tag, good.page_size) == ("python", 5)
    assert plain_query(b"tag=%23Python&page_size=5") is good  # the same object: one dict lookup
    assert plain_query(b"tag=") is None and plain_query(b"tag=") is None


def test_the_response_is_framed_by_its_body() -> None:
    assert response(b'{"a":1}', "id-1") == (b"HTTP/1.1 200 OK\r\nX-Cache: HIT\r\nX-Request-ID: id-1\r\n"
                                           b"content-length: 7\r\nconnection: keep-alive\r\n"
                                           b"content-type: application/json\r\n\r\n" b'{"a":1}')


def test_the_fast_protocol_runs_only_where_it_can_answer() -> None:
    from service.__main__ import protocol
    from service.connections import GuardedProtocol
    from service.fastpath import FastHitProtocol
    from service.settings import Settings

    assert protocol(Settings()) is FastHitProtocol
    lean_off = {"USE_LEAN_SEARCH": "false", "USE_LEAN_POST": "false"}
    for on in ({"USE_FAST_HITS": "false"}, {"CACHE_ENABLED": "false"}, {"LOCAL_CACHE_TTL": "0"}, lean_off):
        assert protocol(Settings.from_env(on)) is FastHitProtocol, on  # hits or lean searches to answer
    for off in ({"USE_FAST_HITS": "false", **lean_off}, {"CACHE_ENABLED": "false", **lean_off},
                {"LOCAL_CACHE_TTL": "0", **lean_off}, {"ACCESS_LOG": "true"}):
        assert protocol(Settings.from_env(off)) is GuardedProtocol, off


def test_a_search_head_is_remembered_only_without_a_request_id_and_within_bounds() -> None:
    fastpath.KNOWN_HEADS.clear()
    plain = HEAD.rstrip(b"\r\n")
    parsed = parse_head(plain)
    assert parsed is not None
    remember_head(plain, parsed)
    assert fastpath.KNOWN_HEADS[plain] == parsed  # the same query, token and no request id
    with_id = plain + b"\r\nX-Request-ID: r-1"
    remember_head(with_id, parse_head(with_id))  # type: ignore[arg-type]
    long = plain + b"\r\nX-Pad: " + b"p" * fastpath.MAX_REMEMBERED_HEAD
    remember_head(long, parse_head(long))  # type: ignore[arg-type]
    assert list(fastpath.KNOWN_HEADS) == [plain]
    for i in range(fastpath.MAX_HEADS + 1):  # bounded: full, it starts again
        other = plain + f"\r\nX-N: {i}".encode()
        remember_head(other, parse_head(other))  # type: ignore[arg-type]
    assert 0 < len(fastpath.KNOWN_HEADS) <= fastpath.MAX_HEADS and plain not in fastpath.KNOWN_HEADS
    fastpath.KNOWN_HEADS.clear()


def test_fast_hits_counted_together_equal_each_counted_alone(tmp_path: Path) -> None:
    together, alone = Metrics(tmp_path), Metrics(tmp_path)
    for seconds in (0.0004, 0.003, 0.2):
        together.observe_fast_hits("api/v1/search-tweets", 3, seconds)
        for _ in range(3):
            alone.observe("api/v1/search-tweets", "GET", 200, seconds, "HIT")
    assert together.requests == alone.requests and together.cache == alone.cache
    assert together.latency.keys() == alone.latency.keys()
    for route, row in together.latency.items():
        assert row[:-1] == alone.latency[route][:-1] and abs(row[-1] - alone.latency[route][-1]) < 1e-9
    assert together.fast_hits == 9


def test_a_head_with_bytes_outside_ascii_is_left_to_sanic() -> None:
    """Sanic decodes a head as UTF-8 and strips Unicode whitespace from values: latin-1 here read
    b"\\xa0Bearer" as "Bearer" where Sanic reads no bearer (and a proxy reading as Sanic would)."""
    line_end = len(head())
    for value in (b"\xa0Bearer tok", b"\x85Bearer tok", b"\xc2\xa0Bearer tok", b"Bearer\xa0tok"):
        assert parse_head(head(b"Authorization:" + value)) is None, value
        assert bearer_and_id(head(b"Authorization:" + value), line_end) is None, value
    assert parse_head(head(b"Authorization: Bearer tok", b"X-Request-ID:\xa0r1")) is None
    assert parse_head(head(b"Authorization: Bearer tok", b"X-Note: caf\xc3\xa9")) is None


def test_a_length_is_ascii_digits_only() -> None:
    """The rule the front and the framework (FinishingHttp) both read a Content-Length by; the
    framework's 400 is tests/integration/test_framing.py's."""
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
    post = b"POST /api/v1/tweet HTTP/1.1"
    for length in ("\u0665".encode(), b"5\x0b", b"0x5"):
        assert header_fields(head(auth, b"Content-Length: " + length, line=post), line_end, True) is None
    assert header_fields(head(auth, b"Content-Length:\t5 ", line=post), line_end, True) == ("tok", None, 5)
