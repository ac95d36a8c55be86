"""Responses finished by the protocol (FINISH_IN_PROTOCOL, the default) and by a Sanic response
middleware (off) are the same: request ids, headers, statuses and what /metrics counts, on every
kind of response, the ones Sanic answers by itself (400, 404, 405, 413) included."""

import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, start_server

REQUESTS = [
    b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Request-ID: given-id.1\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Request-ID: bad id!\r\n\r\n",
    b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /api/v1/register HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /api/v1/search-tweets?tag=a HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /api/v1/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: 9\r\n\r\n{not json",
    b"POST /api/v1/register HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nHost: t\r\nBroken header line\r\n\r\n",
]


@pytest.fixture(scope="module")
def pair(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    protocol = start_server(urls, tmp_path_factory, FINISH_IN_PROTOCOL="true")
    middleware = start_server(urls, tmp_path_factory, FINISH_IN_PROTOCOL="false")
    yield protocol, middleware
    protocol.stop()
    middleware.stop()


def exchange(server: Server, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers, body) of one request on a connection of its own."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        size = int(headers.get("content-length", 0)) if not request.startswith(b"HEAD") else 0
        while len(body) < size:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return lines[0], headers, body


def requests_counted(server: Server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("http_requests_total{") and 'route="metrics"' not in line)


@pytest.mark.parametrize("request_bytes", REQUESTS, ids=lambda r: r.split(b"\r\n")[0].decode()[:40])
def test_the_same_response_either_way(pair: tuple[Server, Server], request_bytes: bytes) -> None:
    (status_a, headers_a, body_a), (status_b, headers_b, body_b) = (exchange(s, request_bytes) for s in pair)
    assert status_a == status_b
    assert body_a == body_b
    assert set(headers_a) == set(headers_b), (headers_a, headers_b)
    for name in set(headers_a) - {"date", "x-request-id"}:
        assert headers_a[name] == headers_b[name], name
    ids = headers_a["x-request-id"], headers_b["x-request-id"]
    if b"given-id.1" in request_bytes:
        assert ids == ("given-id.1", "given-id.1")
    else:  # each worker's own: pid prefix and counter
        assert all(re.fullmatch(r"[0-9a-f]+-[0-9]+", i) for i in ids), ids


def test_every_response_is_counted_either_way(pair: tuple[Server, Server]) -> None:
    for server in pair:
        before = requests_counted(server)
        for request in REQUESTS:
            exchange(server, request)
        # Sanic answers a malformed head before a route exists: counted as "unmatched" either way
        assert requests_counted(server) - before == len(REQUESTS), server.url
