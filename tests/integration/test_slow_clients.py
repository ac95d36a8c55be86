"""Slow and many clients (service/connections.py): a request must arrive whole within
REQUEST_TIMEOUT of its first byte however it trickles, a worker holds at most
WORKER_MAX_CONNECTIONS connections, and cached searches keep answering meanwhile."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.conftest import Server, register_and_login, start_server, unique

DEADLINE = 4.0  # REQUEST_TIMEOUT here
CHECK = DEADLINE / 2  # how often Sanic looks at a connection's timers: min(timeouts) / 2
HEAD = b"GET /api/v1/search-tweets?tag=slow HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer x\r\n\r\n"
BODY_HEAD = (b"POST /api/v1/tweet HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             b"Content-Length: 64\r\n\r\n")


def trickle(port: int, whole: bytes, payload: bytes, every: float = 2.0) -> tuple[float, bytes]:
    """Send `whole` at once, then `payload` one byte every `every` seconds until the server answers
    or closes: (seconds from the first byte to that, what it answered)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(every)
        began = time.monotonic()
        got = b""
        if whole:
            s.sendall(whole)
        for byte in payload:
            try:
                s.sendall(bytes([byte]))
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            got += chunk
            break
        elapsed = time.monotonic() - began
        s.settimeout(2)
        try:
            while chunk := s.recv(4096):
                got += chunk
        except OSError:
            pass
        return elapsed, got


def established(srv: Server) -> int:
    """The server's workers' connections from clients now."""
    workers = psutil.Process(srv.pid).children(recursive=True)
    return sum(1 for w in workers for c in w.net_connections("tcp")
               if c.laddr and c.laddr.port == srv.port and c.status == psutil.CONN_ESTABLISHED)


@pytest.fixture(scope="module")
def guarded(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(urls, tmp_path_factory, REQUEST_TIMEOUT=str(DEADLINE), WORKER_MAX_CONNECTIONS="100")
    yield srv
    srv.stop()


def test_a_trickled_head_or_body_is_cut_at_the_deadline_from_its_first_byte(guarded: Server) -> None:
    """Twenty clients trickle a request head and twenty a body, one byte every 2 s: each is
    answered 408 and closed within the deadline (plus Sanic's check interval, or the next byte),
    not kept open by every byte restarting the clock; a normal client is served meanwhile."""
    results: list[tuple[str, float, bytes]] = []

    def one(kind: str) -> None:
        elapsed, got = trickle(guarded.port, b"" if kind == "head" else BODY_HEAD,
                               HEAD if kind == "head" else b"x" * 64)
        results.append((kind, elapsed, got))

    threads = [threading.Thread(target=one, args=(kind,)) for kind in ("head", "body") * 20]
    for t in threads:
        t.start()
    with httpx.Client(base_url=guarded.url, timeout=10) as c:
        assert c.get("/ping").status_code == 200
    for t in threads:
        t.join(60)
    assert len(results) == 40
    for kind, elapsed, got in results:
        assert got.startswith(b"HTTP/1.1 408"), (kind, got[:80])
        assert elapsed <= DEADLINE + CHECK + 0.5, (kind, elapsed)


def test_at_the_bound_idle_connections_make_room_and_cached_searches_keep_their_latency(
        guarded: Server) -> None:
    """1,000 idle connections against a worker bound to 100: it never holds more than the bound,
    the new ones take the place of the longest idle, and cached searches from a client that
    arrives after them are answered as fast as before (the median within 3x, or 10 ms)."""

    def median_search(tag: str, auth: dict[str, str]) -> float:
        with httpx.Client(base_url=guarded.url, timeout=10) as c:
            times = []
            for _ in range(30):
                began = time.perf_counter()
                assert c.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth).status_code == 200
                times.append(time.perf_counter() - began)
        return statistics.median(times)

    with httpx.Client(base_url=guarded.url, timeout=10) as c:
        _, auth = register_and_login(c)
        tag = unique("bound")
        assert c.post("/api/v1/tweet", json={"msg": f"#{tag}"}, headers=auth).status_code == 201
    before = median_search(tag, auth)
    horde = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(1000)]
    try:
        deadline = time.monotonic() + 10
        while (held := established(guarded)) > 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        during = median_search(tag, auth)
        closed = 0
        for s in horde:  # the ones that made room were closed by the server: they read EOF
            s.setblocking(False)
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
    finally:
        for s in horde:
            s.close()
    assert held <= 100, held
    assert closed >= 900, closed
    assert during <= max(3 * before, before + 0.010), (before, during)


def test_when_no_connection_is_idle_a_new_one_is_answered_503(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(urls, tmp_path_factory, WORKER_MAX_CONNECTIONS="20")
    busy = []
    try:
        for _ in range(20):  # each mid-way through a request head: none is idle
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET /ping HTTP/1.1\r\n")
            busy.append(s)
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", srv.port)) as extra:
            extra.settimeout(5)
            answer = b""
            while chunk := extra.recv(4096):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower(), answer
        assert body == b'{"message":"Too many connections, retry shortly","code":"serviceUnavailable"}'
        for s in busy:  # the busy ones are still served
            s.sendall(b"Host: localhost\r\n\r\n")
        busy[0].settimeout(5)
        assert busy[0].recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for s in busy:
            s.close()
        srv.stop()


def closed_after(port: int, head: bytes, every: float | None) -> tuple[float, bytes]:
    """Send a head answered before its body is read (Content-Length: 64), then its body one byte
    every `every` seconds (None: nothing more): (seconds from the first byte until the server
    closed the connection, what it sent)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        began = time.monotonic()
        s.sendall(head)
        s.settimeout(0.2)
        got, next_byte = b"", began + (every or 0.0)
        while time.monotonic() - began < 30:
            if every is not None and time.monotonic() >= next_byte:
                try:
                    s.sendall(b"x")
                except OSError:
                    break
                next_byte += every
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        return time.monotonic() - began, got


@pytest.fixture(scope="module")
def guarded_without_front(urls: tuple[str, str],
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(urls, tmp_path_factory, REQUEST_TIMEOUT=str(DEADLINE), USE_FAST_HITS="false",
                       USE_LEAN_SEARCH="false", USE_LEAN_POST="false")
    yield srv
    srv.stop()


@pytest.mark.parametrize("every", [1.0, None], ids=["trickled", "stalled"])
def test_a_body_discarded_after_an_early_response_is_cut_at_the_deadline(
        guarded: Server, guarded_without_front: Server, every: float | None) -> None:
    """A 401 (or a GET route's answer) is sent before the body is read; Sanic then discards the
    body with its stage back at IDLE, where only the keep-alive timeout (restarted by every byte)
    bounded it. The request's deadline covers that body too: the connection is closed at it, front
    on and off, whether the body trickles in or stalls."""
    head = HEAD.replace(b"\r\n\r\n", b"\r\nContent-Length: 64\r\n\r\n")
    for srv in (guarded, guarded_without_front):
        elapsed, got = closed_after(srv.port, head, every)
        assert got.startswith(b"HTTP/1.1 401") and got.count(b"HTTP/1.1") == 1, got[:200]
        front = srv.env.get("USE_FAST_HITS", "true")
        assert DEADLINE - 0.5 <= elapsed <= DEADLINE + CHECK + 0.5, (front, every, elapsed)
