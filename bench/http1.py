"""The one raw HTTP/1.1 client of the experiments: requests written in one send (no Nagle stalls, no
client library's CPU in the measurement), responses framed by Content-Length. Used by the
open-loop streams (bench/curves.py, bench/openloop) and the cross-worker visibility run (bench/load.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


def request(method: str, path: str, bearer: str = "", body: bytes = b"", host: str = "bench") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if bearer:
        head += f"Authorization: Bearer {bearer}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def split_response(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(status, body, the bytes after this response) once buf holds a whole response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    at = head.find(b"content-length:")
    length = 0
    if at >= 0:
        eol = head.find(b"\r\n", at)
        length = int(head[at + 15: eol if eol >= 0 else len(head)])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return int(head[9:12]), buf[end + 4: total], buf[total:]


class Client:
    """One keep-alive connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bearer: str) -> None:
        self.reader, self.writer, self.bearer = reader, writer, bearer
        self._buf = b""

    @classmethod
    async def open(cls, port: int, bearer: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, bearer)

    async def call(self, method: str, path: str, body: bytes = b"") -> dict[str, Any]:
        self.writer.write(request(method, path, self.bearer, body))
        while (parsed := split_response(self._buf)) is None:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self._buf += data
        _, payload, self._buf = parsed
        return dict(json.loads(payload))

    def close(self) -> None:
        self.writer.close()
