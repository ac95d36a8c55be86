"""Raw HTTP/1.1 exchanges for the request-framing tests (tests/integration/test_framing.py): bytes
sent as given, in chunks with pauses between, and what came back read as a sequence of responses,
normalised where two servers of the same service may rightly differ (the ids they generate, the
ids and times of the tweets they create)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# The service's settings with the protocol front (service/fastpath.py) on and off.
FRONT = {
    "on": {"USE_FAST_HITS": "true", "USE_LEAN_SEARCH": "true", "USE_LEAN_POST": "true"},
    "off": {"USE_FAST_HITS": "false", "USE_LEAN_SEARCH": "false", "USE_LEAN_POST": "false"},
}
GENERATED_ID = re.compile(rb"^[0-9a-f]+-[0-9]+$")  # service/app.py RequestIds: "<pid hex>-<n>"


@dataclass(frozen=True)
class Outcome:
    """The responses of one exchange in order (each normalised), bytes after them that were no
    whole response, and whether the server closed the connection."""

    responses: tuple[bytes, ...]
    rest: bytes
    closed: bool

    def statuses(self) -> list[int]:
        return [int(r.split(b" ", 2)[1]) for r in self.responses]

    def request_ids(self) -> list[bytes]:
        return [header(r, b"x-request-id") for r in self.responses]


def header(response: bytes, name: bytes) -> bytes:
    for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


def exchange(
    port: int, chunks: Sequence[bytes], pause: float = 0.05, quiet: float = 0.6, host: str = "127.0.0.1"
) -> Outcome:
    """Send each chunk (pausing between them), then read until the server closes or is quiet."""
    received = b""
    closed = False
    with socket.create_connection((host, port), timeout=10) as sock:
        for n, chunk in enumerate(chunks):
            if n:
                time.sleep(pause)
            try:
                sock.sendall(chunk)
            except OSError:
                break  # closed by the server: what it answered is read below
        sock.settimeout(quiet)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:  # reset: closed
                closed = True
                break
            if not data:
                closed = True
                break
            received += data
    responses, rest = split_responses(received)
    return Outcome(tuple(normalise(r) for r in responses), rest, closed)


def split_responses(stream: bytes) -> tuple[list[bytes], bytes]:
    """Whole responses in a byte stream, framed by Content-Length (none for 1xx, and none where
    the next response or the end follows the head at once: an answer to HEAD)."""
    out = []
    while (end := stream.find(b"\r\n\r\n")) >= 0:
        head = stream[: end + 4]
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
        length = 0 if status < 200 else int(header(head, b"content-length") or 0)
        after = stream[end + 4 :]
        if after.startswith(b"HTTP/1.") or not after:
            length = 0
        if len(after) < length:
            break
        out.append(head + after[:length])
        stream = after[length:]
    return out, stream


def normalise(response: bytes) -> bytes:
    """A generated X-Request-ID as <generated>; a created tweet's id, time and length as <new>;
    X-Cache HIT or MISS as <page> (whether a page was still in a worker when asked depends on what
    other cases, run at the same time, asked before; BYPASS stays)."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    created = lines[0].startswith(b"HTTP/1.1 201")
    for i, line in enumerate(lines[1:], 1):
        key, _, value = line.partition(b": ")
        if key.lower() == b"x-request-id" and GENERATED_ID.match(value):
            lines[i] = key + b": <generated>"
        elif key.lower() == b"x-cache" and value in (b"HIT", b"MISS"):
            lines[i] = key + b": <page>"
        elif key.lower() == b"content-length" and created:
            lines[i] = key + b": <length>"
    if created:
        tweet = json.loads(body)
        tweet["data"]["id"] = tweet["data"]["created_at"] = "<new>"
        body = json.dumps(tweet, sort_keys=True).encode()
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


WARM_UP = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"


def outcome(port: int, chunks: Sequence[bytes], fresh: bool) -> Outcome:
    """The exchange on a fresh connection, or after a request answered on it (Sanic then waits in
    its loop for the next request; on a fresh connection its task may not have begun)."""
    if fresh:
        return exchange(port, chunks)
    got = exchange(port, [WARM_UP, *chunks])
    assert got.responses and got.statuses()[0] == 200, got
    return Outcome(got.responses[1:], got.rest, got.closed)


def differences(
    ports: tuple[int, int], cases: Mapping[str, Sequence[bytes]], fresh: bool, threads: int = 32
) -> dict[str, tuple[Outcome, Outcome]]:
    """The cases whose outcomes differ between the two servers (every case on each, at once)."""
    with ThreadPoolExecutor(threads) as pool:
        got = [pool.map(outcome, [port] * len(cases), cases.values(), [fresh] * len(cases)) for port in ports]
        results = dict(zip(cases, zip(*got, strict=True), strict=True))
    return {name: (a, b) for name, (a, b) in results.items() if a != b}


class Connection:
    """One keep-alive client connection: requests written as given, responses read one by one."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> bytes:
        """The next whole response (its body framed by Content-Length; not an answer to HEAD)."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0 or len(self.buf) < end + 4 + int(
            header(self.buf[: end + 4], b"content-length") or 0
        ):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by the server after {self.buf[:200]!r}")
            self.buf += chunk
        total = end + 4 + int(header(self.buf[: end + 4], b"content-length") or 0)
        whole, self.buf = self.buf[:total], self.buf[total:]
        return whole

    def close(self) -> None:
        self.sock.close()
