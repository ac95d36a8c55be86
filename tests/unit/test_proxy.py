"""The failure tests' TCP proxy shapes one client's link: late by its delay each way, a lost chunk
late by a retransmission timeout with the bytes behind it held, and every byte in order."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.proxy import RTO_S, Proxy, Shape


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A proxy in front of an echo server on loopback."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    made = Proxy(server.getsockname()[1])
    yield made
    made.close()
    server.close()


def round_trip(port: int, payload: bytes) -> tuple[float, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        start = time.monotonic()
        sending = threading.Thread(target=conn.sendall, args=(payload,))  # while the echo is read
        sending.start()
        got = b""
        while len(got) < len(payload):
            got += conn.recv(65536)
        sending.join()
        return time.monotonic() - start, got


def test_an_unshaped_link_is_carried_at_once(proxy: Proxy) -> None:
    seconds, got = round_trip(proxy.port, b"ping")
    assert got == b"ping" and seconds < 0.1


def test_a_slow_link_is_late_by_its_delay_each_way_for_its_client_only(proxy: Proxy) -> None:
    proxy.shapes["127.0.0.1"] = Shape(delay=0.15)
    seconds, got = round_trip(proxy.port, b"ping")
    assert got == b"ping" and 0.3 <= seconds < 0.5, seconds
    proxy.shapes.clear()
    proxy.shapes["127.0.0.2"] = Shape(delay=0.15)  # another client's link
    assert round_trip(proxy.port, b"ping")[0] < 0.1


def test_a_lost_chunk_arrives_a_retransmission_later_and_nothing_overtakes_it(proxy: Proxy) -> None:
    proxy.shapes["127.0.0.1"] = Shape(loss=1.0)
    seconds, got = round_trip(proxy.port, b"ping")
    assert got == b"ping" and 2 * RTO_S <= seconds < 2 * RTO_S + 0.2, seconds
    proxy.shapes["127.0.0.1"] = Shape(delay=0.01, loss=0.3)
    payload = b"".join(i.to_bytes(4, "big") for i in range(200_000))  # many chunks, some lost
    assert round_trip(proxy.port, payload)[1] == payload
