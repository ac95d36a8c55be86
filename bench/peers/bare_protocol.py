"""The hit path's limit: a bare uvloop protocol with httptools answering one page's bytes from memory,
with no token check, routing, metrics, request id or cache lookup. It is what parsing and writing
HTTP cost in Python on this loop, and the constant server the open-loop generator is proved on.

    PORT=2091 BODY_FILE=page.json python -m bench.peers.bare_protocol

BODY_FILE holds the body (the service's own hit page, when the harness has one); without it a
1.5 KB JSON body is made up.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import httptools
import uvloop


def response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-cache: HIT\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def made_up_body() -> bytes:
    tweets = ",".join(f'{{"id":{i},"msg":"#bench tweet number {i:04d} padded to a typical length",'
                      f'"tags":["bench"],"user_id":{i % 97}}}' for i in range(14))
    return f'{{"data":[{tweets}],"pagination":{{"page":1,"page_size":10,"total":1000}}}}'.encode()


class Bare(asyncio.Protocol):
    """Every request on the connection answered with the same bytes, in order (pipelining kept)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(self.answer)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int, answer: bytes) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = await loop.create_server(lambda: Bare(answer), sock=sock, backlog=1024)
    await server.serve_forever()


def main() -> None:
    body_file = os.environ.get("BODY_FILE")
    body = Path(body_file).read_bytes() if body_file else made_up_body()
    uvloop.run(serve(int(os.environ.get("PORT", "2091")), response(body)))


if __name__ == "__main__":
    main()
