"""Constant-rate HTTP load without coordinated omission (wrk2-style), for latency at a set rate.

Request i is due at t0 + i/rate. Each is sent on a free keep-alive connection as soon as it is
due; its latency runs from when it was *due*, not when it was sent, so a stalled server is
charged for the requests it delayed. Responses are parsed just enough (Content-Length).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass

from bench import http1


@dataclass
class RateResult:
    target_rps: float
    achieved_rps: float
    sent: int
    completed: int
    errors: int
    latencies_us: list[float]

    def percentile(self, p: float) -> float:
        if not self.latencies_us:
            return float("nan")
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class _Conn(asyncio.Protocol):
    def __init__(self, on_response) -> None:  # type: ignore[no-untyped-def]
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.pending: deque[float] = deque()
        self.on_response = on_response
        self.lost = False

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def connection_lost(self, exc) -> None:  # type: ignore[no-untyped-def]
        self.lost = True

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (parsed := http1.split_response(self.buf)) is not None:
            status, _, self.buf = parsed
            self.on_response(self, self.pending.popleft(), 200 <= status < 300)


async def run(host: str, port: int, request: bytes, rate: float, duration: float,
              connections: int = 64) -> RateResult:
    loop = asyncio.get_running_loop()
    idle: deque[_Conn] = deque()
    waiting: deque[float] = deque()  # due times of requests with no free connection yet
    latencies: list[float] = []
    errors = 0
    completed = 0
    last_response = 0.0

    def on_response(conn: _Conn, due: float, ok: bool) -> None:
        nonlocal errors, completed, last_response
        now = last_response = time.perf_counter()
        completed += 1
        if ok:
            latencies.append((now - due) * 1e6)
        else:
            errors += 1
        if waiting:
            send(conn, waiting.popleft())
        else:
            idle.append(conn)

    def send(conn: _Conn, due: float) -> None:
        conn.pending.append(due)
        assert conn.transport is not None
        conn.transport.write(request)

    conns = []
    for _ in range(connections):
        _, proto = await loop.create_connection(lambda: _Conn(on_response), host, port)
        conns.append(proto)
        idle.append(proto)
    interval = 1.0 / rate
    start = time.perf_counter()
    sent = 0
    while True:
        now = time.perf_counter()
        if now - start >= duration:
            break
        due_count = int((now - start) / interval) + 1
        while sent < due_count:
            due = start + sent * interval
            if idle:
                send(idle.popleft(), due)
            else:
                waiting.append(due)
            sent += 1
        await asyncio.sleep(min(interval, 0.001))
    drain_until = time.perf_counter() + 5
    while completed < sent and time.perf_counter() < drain_until:
        await asyncio.sleep(0.005)
    elapsed = max(duration, last_response - start)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    errors += sent - completed  # never answered within the drain period
    return RateResult(rate, completed / elapsed, sent, completed, errors, latencies)


def measure(host: str, port: int, path: str, token: str, rate: float, duration: float,
            connections: int = 64) -> RateResult:
    import uvloop

    return uvloop.run(run(host, port, http1.request("GET", path, token, host=f"{host}:{port}"), rate, duration,
                          connections))


def main() -> None:
    """Run pinned by the harness (taskset) as its own process; prints the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    r = measure("127.0.0.1", args.port, args.path, args.token, args.rate, args.seconds)
    print(json.dumps({"target": r.target_rps, "achieved": r.achieved_rps, "errors": r.errors,
                      "p50": r.percentile(50), "p90": r.percentile(90), "p99": r.percentile(99),
                      "p999": r.percentile(99.9)}))


if __name__ == "__main__":
    main()
