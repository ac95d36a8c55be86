"""The delaying relay of make bench-network (bench/network/relay.c) between a client and an echo
server on loopback: each round trip costs twice its delay, bytes arrive whole and in order both
ways, a half-close passes once what came before it has."""

from __future__ import annotations

import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.native import compiled
from bench.network import RELAY
from tests.conftest import free_port


@contextmanager
def echo_server() -> Iterator[int]:
    """Echoes every connection's bytes back, and closes its side once the client closed its own."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()


@contextmanager
def relay(delay_us: int, upstream: int) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([str(compiled(RELAY)), str(delay_us), f"127.0.0.1:{port}=127.0.0.1:{upstream}"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def received(conn: socket.socket, count: int) -> bytes:
    out = bytearray()
    while len(out) < count:
        data = conn.recv(min(65536, count - len(out)))
        assert data, f"closed after {len(out)} of {count} bytes"
        out += data
    return bytes(out)


def round_trips(delay_us: int, count: int) -> list[float]:
    """Seconds each of `count` small messages took to come back through a relay of that delay."""
    with echo_server() as upstream, relay(delay_us, upstream) as port:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            trips = []
            for i in range(count):
                started = time.perf_counter()
                conn.sendall(b"ping %d\n" % i)
                assert received(conn, len(b"ping %d\n" % i)) == b"ping %d\n" % i
                trips.append(time.perf_counter() - started)
    return trips


def test_a_round_trip_costs_twice_the_delay() -> None:
    trips = round_trips(5000, 15)
    assert 0.010 <= statistics.median(trips) < 0.018, trips
    assert min(trips) >= 0.010, trips


def test_bytes_pass_whole_and_in_order_both_ways_and_a_half_close_after_them() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: many chunks, more than a socket buffer
    with echo_server() as upstream, relay(1000, upstream) as port:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            def send() -> None:
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send)
            sender.start()
            back = received(conn, len(payload))
            sender.join(10)
            conn.settimeout(5)
            assert conn.recv(1) == b"", "the echo server's close did not pass"
    assert back == payload


def test_with_no_delay_it_only_forwards() -> None:
    trips = round_trips(0, 50)
    assert statistics.median(trips) < 0.002, trips
