"""What the front reads of a request head, by the rules Sanic reads it with; anything else is
Sanic's. Lengths are ASCII digits only (`field_int`, the framework's rule too)."""

from __future__ import annotations

import re
from typing import Generic, TypeVar

DECIMAL, HEX = frozenset("0123456789"), frozenset("0123456789abcdefABCDEF")
# A query in plain form: what httptools and the front split alike (no fragment, no space).
PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_.~%+=&-]{1,1024}")
# Headers after which the request is Sanic's to answer.
DEFER = frozenset({"content-length", "transfer-encoding", "expect", "upgrade", "connection"})
ONCE = frozenset({"authorization", "x-request-id"})  # Sanic reads the first of these; a repeat is its
MAX_LENGTH = 999_999_999  # a longer body is Sanic's (413 past REQUEST_MAX_SIZE)


def field_int(value: str, base: int = 10) -> int:
    """A Content-Length (base 10) or a chunk size (base 16) as RFC 9112 writes them: digits of
    ASCII only (Python's int() also takes other scripts' digits, signs, underscores, "0x" and
    surrounding whitespace of any kind), trailing spaces or tabs allowed; else ValueError, which
    Sanic answers 400 and closes."""
    digits = value.rstrip(" \t")
    if not digits or len(digits) > 16 or not (DECIMAL if base == 10 else HEX).issuperset(digits):
        raise ValueError(f"not a length: {value!r}")
    return int(digits, base)


def target(head: bytes, prefix: bytes) -> tuple[bytes, int] | None:
    """(what follows `prefix` on the request line, the line's end) of an HTTP/1.1 request line
    beginning with `prefix`, else None."""
    line_end = head.find(b"\r\n")
    if line_end < 0 or head[line_end - 9:line_end] != b" HTTP/1.1":
        return None
    return head[len(prefix):line_end - 9], line_end


def header_fields(head: bytes, line_end: int, with_body: bool) -> tuple[str, str | None, int] | None:
    """(bearer token, X-Request-ID or None, Content-Length) from the header lines after the request
    line; None when a header leaves the request to Sanic, or there is no bearer token. A request
    `with_body` must give one plain Content-Length; any other must give none. Heads with bytes
    outside ASCII are Sanic's: it decodes them as UTF-8 and strips Unicode whitespace (so
    latin-1 here would read b"\\xa0Bearer" as "Bearer", where Sanic reads no bearer at all)."""
    if not head.isascii():
        return None
    token = request_id = None
    length = -1
    for raw in head[line_end + 2:].split(b"\r\n"):
        name, colon, value = raw.partition(b":")
        if not colon:
            return None  # Sanic answers a malformed header line with 400
        key = name.decode("ascii").lower()
        if key == "content-length" and with_body and length < 0:
            try:  # the framework's own rule, after Sanic's lstrip
                length = field_int(value.decode("ascii").lstrip())
            except ValueError:
                return None
            if length > MAX_LENGTH:
                return None
            continue
        if key in DEFER:
            return None
        if key in ONCE:
            text = value.decode("ascii").lstrip()  # as Sanic takes a value
            if key == "authorization":
                scheme, _, given = text.partition(" ")
                if token is not None or scheme.lower() != "bearer" or not given:
                    return None
                token = given
            elif request_id is not None:
                return None
            else:
                request_id = text
    if token is None or (length < 0) == with_body:
        return None
    return token, request_id, length


K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """What a worker has made of bytes it saw, bounded to `size` entries with the least recently
    used out first, by halves: entries live in two generations, a hit in the older one moves
    the entry to the newer, and when the newer is full the older is dropped whole. A hit in the
    newer generation costs one dict lookup (an OrderedDict's move_to_end per hit cost the cached
    search 2%). Values are never None."""

    __slots__ = ("half", "older", "recent")

    def __init__(self, size: int) -> None:
        self.half = max(1, size // 2)
        self.recent: dict[K, V] = {}
        self.older: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self.recent.get(key)
        if value is None:
            value = self.older.pop(key, None)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        if len(self.recent) >= self.half:
            self.older, self.recent = self.recent, {}
        self.recent[key] = value

    def __len__(self) -> int:
        return len(self.recent) + len(self.older)
