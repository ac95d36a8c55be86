"""Every response head the service writes comes from service/http/writer.py's `head`, byte for byte
the head Sanic formats for the same response finished by the service (its own headers, then
X-Request-ID, content-length, connection and content-type); whatever Sanic would have to clean is
left to Sanic."""

from __future__ import annotations

from typing import Any

import pytest
from sanic.headers import format_http1_response
from sanic.response import HTTPResponse

from ops.balancer import ERRORS, error_page
from service.http.writer import BUSY_BODY, X_CACHE, Responses, fields_of, head

PLAIN = [
    (200, {"X-Cache": "HIT"}, "application/json"),
    (201, {}, "application/json"),
    (404, {"content-type": "text/plain; charset=utf-8"}, None),
    (503, {"Retry-After": "1", "WWW-Authenticate": 'Bearer realm="x"'}, "application/json"),
    (413, {"x-empty": ""}, "application/json"),
    (299, {"X-Number": 5}, "text/html; charset=utf-8"),
]
UNSAFE = [
    {"X-Injected": "a\r\nSet-Cookie: x=1"},
    {"X-Bare-LF": "a\nb"},
    {"X-Nul": "a\x00b"},
    {"X-Bad\r\nName": "v"},
    {"X-Text": "café"},
    {"X-Request-ID": "set-by-a-handler"},
    {"Content-Length": "3"},
    {"connection": "close"},
]


def sanic_head(status: int, headers: dict[str, Any], content_type: str | None, rid: str, length: int,
               keep_alive: bool) -> bytes:
    finished = {**headers, "X-Request-ID": rid, "content-length": length,
                "connection": "keep-alive" if keep_alive else "close"}
    res = HTTPResponse(b"", status=status, headers=finished, content_type=content_type)
    return format_http1_response(status, res.processed_headers)


@pytest.mark.parametrize(("status", "headers", "content_type"), PLAIN)
@pytest.mark.parametrize("keep_alive", [True, False])
def test_the_same_bytes_as_sanic(status: int, headers: dict[str, Any], content_type: str | None,
                                 keep_alive: bool) -> None:
    fields = fields_of(headers)
    assert fields is not None
    ours = head(status, fields, "abc-1", 17, keep_alive, None if "content-type" in headers else content_type)
    assert ours == sanic_head(status, headers, content_type, "abc-1", 17, keep_alive)


@pytest.mark.parametrize("headers", UNSAFE, ids=lambda h: repr(h)[:30])
def test_anything_sanic_must_clean_is_left_to_it(headers: dict[str, Any]) -> None:
    assert fields_of(headers) is None


def test_the_busy_answer_and_the_balancers_pages_come_from_the_same_writer() -> None:
    busy = Responses(None, "p").busy()
    assert busy.startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nX-Request-ID: p-1\r\n")
    assert busy.endswith(b"connection: close\r\ncontent-type: application/json\r\n\r\n" + BUSY_BODY)
    for status in ERRORS:
        page = error_page(status)
        line, _, rest = page.partition(b"\r\n")
        body = rest.partition(b"\r\n\r\n")[2]
        assert line == format_http1_response(status, [])[:-4]
        assert b"content-length: %d\r\nconnection: close\r\n" % len(body) in page


def test_a_cached_page_is_written_as_whole_writes_it() -> None:
    """Responses.page, the front's hits without a request id of the client's: the same bytes as
    whole(200, body, None, X-Cache: HIT), request ids in the same sequence, close once draining."""
    body = '{"data":[{"msg":"ünïcode #tag"}]}'.encode()
    fast, usual = Responses(None, "7"), Responses(None, "7")
    pages = [fast.page(body) for _ in range(3)]
    assert pages == [usual.whole(200, body, None, X_CACHE["HIT"]) for _ in range(3)]
    assert pages[2].startswith(b"HTTP/1.1 200 OK\r\nX-Cache: HIT\r\nX-Request-ID: 7-3\r\n")
    fast.stopping = usual.stopping = True
    closing = fast.page(body)
    assert closing == usual.whole(200, body, None, X_CACHE["HIT"]) and b"connection: close\r\n" in closing
