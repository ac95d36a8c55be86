"""The open-loop generator (bench/openloop) against servers whose behaviour is known: it keeps its
schedule, charges a server for the requests it delayed, frames responses as HTTP does, and counts
what was not a success."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench import http1, openloop
from service.settings import ROOT
from tests.conftest import free_port


class Scripted(asyncio.Protocol):
    """Answers each request (one per GET line; these requests have no body) as `answer(n)` says,
    after `delay` seconds, one at a time per connection."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server, self.buf, self.queue = server, b"", asyncio.Queue[int]()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self.answer_in_order())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.server.count += 1
            self.queue.put_nowait(self.server.count)

    async def answer_in_order(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            n = await self.queue.get()
            if self.server.delay:
                await asyncio.sleep(self.server.delay)
            data, close = self.server.answer(n)
            self.transport.write(data)
            if close:
                self.transport.close()


class ScriptedServer:
    def __init__(self, delay: float = 0.0, mode: str = "plain") -> None:
        self.delay, self.mode, self.count, self.port = delay, mode, 0, free_port()

    def answer(self, n: int) -> tuple[bytes, bool]:
        body = b'{"ok": true}'
        if self.mode == "503":
            return b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nretry-after: 1\r\n\r\n{}", False
        if self.mode == "mixed-framing" and n % 3 == 0:  # chunked, split mid-size and with a trailer
            return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"\r\n"
                    b"7\r\n: true}\r\n0\r\nX-Trailer: 1\r\n\r\n"), False
        if self.mode == "mixed-framing" and n % 5 == 0:  # the server closes after this answer
            head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
            return head + body, True
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
                + body), False


@contextmanager
def serving(server: ScriptedServer) -> Iterator[ScriptedServer]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main() -> None:
        await loop.create_server(lambda: Scripted(server), "127.0.0.1", server.port)
        ready.set()

    def run() -> None:
        loop.run_until_complete(main())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        tasks = asyncio.all_tasks(loop)  # each connection's answering task, waiting for a request
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


@pytest.fixture(scope="module")
def get_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("openloop")
    return openloop.write_stream(folder / "get.bin", [http1.request("GET", "/x")])


def test_it_keeps_its_schedule_against_a_fast_server(get_stream: Path) -> None:
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "bench.peers.bare_protocol"], cwd=ROOT,
                            env={"PORT": str(port), "PATH": "/usr/bin:/bin"})
    try:
        time.sleep(1.0)
        r = openloop.offer(port, get_stream, 2000, 2.0, warmup=0.5, connections=16)
    finally:
        bare.terminate()
        bare.wait(5)
    # Poisson arrivals: 4,000 expected, a standard deviation of about 63.
    assert 3700 <= r["scheduled"] <= 4300, r
    assert r["achieved_share"] >= 0.99, r
    assert r["non_2xx"] == r["transport_errors"] == r["timed_out"] == 0, r
    assert 0 < r["latency_us"]["p50"] < 5000, r
    assert r["cpu_s"]["user"] + r["cpu_s"]["system"] < 2.0, r


def test_evenly_spaced_arrivals_are_exactly_the_rate(get_stream: Path) -> None:
    with serving(ScriptedServer()) as server:
        r = openloop.offer(server.port, get_stream, 500, 1.0, warmup=0.2, connections=4, poisson=False)
    assert abs(r["scheduled"] - 500) <= 1, r
    assert r["ok"] == r["scheduled"], r


def test_a_server_that_falls_behind_is_charged_for_every_request_it_delayed(get_stream: Path) -> None:
    # One connection, 20 ms a request: it can take 50 a second; offered 100, the queue grows for the
    # whole second, so requests wait hundreds of ms though each is served in 20. A closed-loop
    # client would report 20 ms.
    with serving(ScriptedServer(delay=0.02)) as server:
        r = openloop.offer(server.port, get_stream, 100, 1.0, warmup=0.0, connections=1, poisson=False)
    assert r["latency_us"]["p50"] > 150_000, r
    assert r["latency_us"]["max"] > 400_000, r
    assert r["achieved_share"] < 0.7, r
    assert r["max_queue"] >= 30, r


def test_chunked_answers_and_closed_connections_are_framed_as_http_does(get_stream: Path) -> None:
    with serving(ScriptedServer(mode="mixed-framing")) as server:
        r = openloop.offer(server.port, get_stream, 400, 1.0, warmup=0.0, connections=4)
    assert r["ok"] == r["scheduled"] == server.count > 300, r
    assert r["transport_errors"] == r["non_2xx"] == 0, r
    # Every answer saying "Connection: close" (each fifth, unless chunked) moved on to a new one.
    assert r["reconnects"] == sum(1 for n in range(1, server.count + 1) if n % 5 == 0 and n % 3), r


def test_what_is_not_a_success_is_counted_and_not_timed(get_stream: Path) -> None:
    with serving(ScriptedServer(mode="503")) as server:
        r = openloop.offer(server.port, get_stream, 300, 1.0, warmup=0.0, connections=4)
    assert r["non_2xx"] == r["scheduled"] > 200, r
    assert r["statuses"]["5xx"] == r["scheduled"] and r["ok"] == 0, r
    assert r["achieved_share"] == 0 and r["latency_us"]["p50"] == -1, r


def test_a_bad_request_file_is_refused_by_name(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(RuntimeError, match="no requests"):
        openloop.offer(free_port(), empty, 100, 0.5)
