"""A whole response's head written by the protocol's Http (service/connections.py, plain_head) is
byte for byte the head Sanic formats, and whatever Sanic would have to clean is left to Sanic."""

from __future__ import annotations

from typing import Any

import pytest
from sanic.headers import format_http1_response
from sanic.response import HTTPResponse

from service.connections import plain_head

PLAIN = [
    (200, {}, "application/json"),
    (201, {"X-Request-ID": "abc-1", "content-length": 17, "connection": "keep-alive"}, "application/json"),
    (404, {"X-Request-ID": "9f-2", "content-type": "text/plain; charset=utf-8", "content-length": 3}, None),
    (503, {"Retry-After": "1", "X-Request-ID": "r", "connection": "close"}, "application/json"),
    (413, {"x-empty": ""}, "application/json"),
    (200, {"content-length": 0}, None),
]
UNSAFE = [
    {"X-Injected": "a\r\nSet-Cookie: x=1"},
    {"X-Bare-LF": "a\nb"},
    {"X-Nul": "a\x00b"},
    {"X-Bad\r\nName": "v"},
    {"X-Text": "café"},
]


def sanic_head(status: int, headers: dict[str, Any], content_type: str | None) -> bytes:
    res = HTTPResponse(b"", status=status, headers=dict(headers), content_type=content_type)
    return format_http1_response(status, res.processed_headers)


@pytest.mark.parametrize(("status", "headers", "content_type"), PLAIN)
def test_the_same_bytes_as_sanic(status: int, headers: dict[str, Any], content_type: str | None) -> None:
    ours = HTTPResponse(b"", status=status, headers=dict(headers), content_type=content_type)
    assert plain_head(status, ours.headers, ours.content_type) == sanic_head(status, headers, content_type)


@pytest.mark.parametrize("headers", UNSAFE, ids=lambda h: repr(h)[:30])
def test_anything_sanic_must_clean_is_left_to_it(headers: dict[str, Any]) -> None:
    res = HTTPResponse(b"", status=200, headers=dict(headers), content_type="application/json")
    assert plain_head(200, res.headers, res.content_type) is None
