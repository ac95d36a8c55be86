"""A corpus of hostile raw requests in the style of the public request-smuggling suites: each case
is a list of chunks sent with a pause between them, and two servers of the service (the protocol
front on and off) must answer every case with the same sequence of responses. Most cases end with
a cached search (HIT) and a victim request (VICTIM) behind the hostile part, so that any
disagreement about where a request begins shows as a response more, less or different."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, unquote_to_bytes

import httpx

from tests.conftest import register_and_login, unique

Case = list[bytes]
CRLF = b"\r\n"


def request(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return line + CRLF + b"".join(h + CRLF for h in headers) + CRLF + body


class Corpus:
    """The requests a case is made of, for one token and one cached tag."""

    def __init__(self, token: str, tag: str, post_tag: str, wide_tag: str) -> None:
        self.auth = b"Authorization: Bearer " + token.encode()
        self.token = token.encode()
        self.path = b"/api/v1/search-tweets?tag=" + tag.encode()
        self.post_tag = post_tag.encode()
        self.wide = (
            b"/api/v1/search-tweets?tag=" + quote(wide_tag).encode()
        )  # a tag outside ASCII, cached too
        # a page past the cached window: PostgreSQL's on both servers, every time (X-Cache: MISS)
        self.cold = self.path + b"&page=20&page_size=100"

    def search(self, *headers: bytes, line: bytes = b"", body: bytes = b"", rid: bytes = b"") -> bytes:
        extra = (b"X-Request-ID: " + rid,) if rid else ()
        return request(line or b"GET " + self.path + b" HTTP/1.1", b"Host: t", *headers, *extra, body=body)

    def hit(self, rid: bytes = b"HIT1") -> bytes:
        return self.search(self.auth, rid=rid)

    def victim(self) -> bytes:
        return request(b"GET /api/v1/verify HTTP/1.1", b"Host: t", self.auth, b"X-Request-ID: VICTIM1")

    def post_body(self, text: str = "smuggled") -> bytes:
        return b'{"msg": "#' + self.post_tag + b" " + text.encode() + b'"}'

    def post(
        self, *headers: bytes, body: bytes | None = None, length: bytes | None = None, rid: bytes = b"POST1"
    ) -> bytes:
        body = self.post_body() if body is None else body
        size = b"Content-Length: " + (str(len(body)).encode() if length is None else length)
        return request(
            b"POST /api/v1/tweet HTTP/1.1",
            b"Host: t",
            self.auth,
            b"Content-Type: application/json",
            *headers,
            size,
            b"X-Request-ID: " + rid,
            body=body,
        )

    def smuggled(self) -> dict[str, bytes]:
        """What an attacker hides in a body: a cached search, a search the front would run itself
        (a lean search), a post the front would write itself (a lean post)."""
        return {
            "hit": self.hit(b"SMUGGLED1"),
            "lean": self.search(self.auth, line=b"GET " + self.cold + b" HTTP/1.1", rid=b"SMUGGLED2"),
            "post": self.post(rid=b"SMUGGLED3"),
        }

    def early(self) -> dict[str, bytes]:
        """Heads answered before their body is read (or whose body Sanic discards)."""
        bad = b"Authorization: Bearer not.a.token"
        return {
            "get-hit": b"GET " + self.path + b" HTTP/1.1\r\nHost: t\r\n" + self.auth + CRLF,
            "get-401": b"GET " + self.path + b" HTTP/1.1\r\nHost: t\r\n" + bad + CRLF,
            "get-404": b"GET /api/v1/nowhere HTTP/1.1\r\nHost: t\r\n" + self.auth + CRLF,
            "delete-405": b"DELETE " + self.path + b" HTTP/1.1\r\nHost: t\r\n" + self.auth + CRLF,
            "get-ping": b"GET /ping HTTP/1.1\r\nHost: t\r\n",
            "me-401": b"GET /api/v1/me HTTP/1.1\r\nHost: t\r\n" + bad + CRLF,
            "post-401": b"POST /api/v1/tweet HTTP/1.1\r\nHost: t\r\n" + bad + CRLF,
            "head-ping": b"HEAD /ping HTTP/1.1\r\nHost: t\r\n",
        }


def bodies_of_answered_requests(c: Corpus) -> Iterator[tuple[str, Case]]:
    """Each early-answered head with a body that is itself a request, framed five ways."""
    victim = c.victim()
    for e_name, head in c.early().items():
        for s_name, s in c.smuggled().items():
            n = len(s)
            chunked = b"%x\r\n" % n + s + b"\r\n0\r\n\r\n"
            yield f"{e_name}/{s_name}/length", [head + b"Content-Length: %d\r\n\r\n" % n, s, victim]
            yield (
                f"{e_name}/{s_name}/length-over-victim",
                [head + b"Content-Length: %d\r\n\r\n" % (n + len(victim)), s + victim, c.hit(b"AFTER")],
            )
            yield f"{e_name}/{s_name}/at-once", [head + b"Content-Length: %d\r\n\r\n" % n + s + victim]
            yield (
                f"{e_name}/{s_name}/chunked",
                [head + b"Transfer-Encoding: chunked\r\n\r\n", chunked, victim],
            )
            yield (
                f"{e_name}/{s_name}/in-trailer",
                [head + b"Transfer-Encoding: chunked\r\n\r\n", b"0\r\n" + s, victim],
            )


LENGTHS = [
    b"5\r\nContent-Length: 5",
    b"5, 5",
    b"+5",
    b"-5",
    b"0x5",
    "\u0665".encode(),
    b"5 ",
    b"\t5",
    b" 5",
    b"05",
    b"5\x0b",
    b"5\x00",
    b"5.0",
    b"1_0",
    b"",
    b"99999999999999999999",
    "\uff15".encode(),
    b"5\r\nTransfer-Encoding: chunked",
    b"\x0c5",
    b"5\x1c",
]
CHUNK_SIZES = [
    b"0x5",
    b" 5",
    b"5 ",
    b"5;ext=1",
    b"+5",
    b"-1",
    "\u0665".encode(),
    b"00005",
    b"1_0",
    b"5\t;x",
    b"5\n",
    b"fffffffffffffffffff",
]
ENCODINGS = [
    b"Chunked",
    b" chunked",
    b"chunked, identity",
    b"identity",
    b"gzip, chunked",
    b"\x0bchunked",
    b"chunked\r\nTransfer-Encoding: chunked",
    b"chunked\r\nContent-Length: 3",
]


def lengths_and_encodings(c: Corpus) -> Iterator[tuple[str, Case]]:
    """Content-Length and Transfer-Encoding variants, duplicates and conflicts, on a search and on
    a post, with a cached search and a victim behind."""
    behind = c.hit(b"BEHIND") + c.victim()
    for value in LENGTHS:
        yield (
            f"search/length={value!r}",
            [c.search(c.auth, b"Content-Length: " + value, body=b"hello"), behind],
        )
        yield f"post/length={value!r}", [c.post(length=value), behind]
    yield "post/length-ascii", [c.post(), behind]
    yield "post/lower-case-name", [c.post().replace(b"Content-Length", b"content-length"), behind]
    yield "post/space-before-colon", [c.post().replace(b"Content-Length:", b"Content-Length :"), behind]
    for value in ENCODINGS:
        yield (
            f"search/te={value!r}",
            [c.search(c.auth, b"Transfer-Encoding: " + value, body=b"5\r\nhello\r\n0\r\n\r\n"), behind],
        )
    for size in CHUNK_SIZES:
        yield (
            f"search/chunk={size!r}",
            [c.search(c.auth, b"Transfer-Encoding: chunked", body=size + b"\r\nhello\r\n0\r\n\r\n"), behind],
        )
    yield (
        "search/chunk-trailer-field",
        [
            c.search(c.auth, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
            behind,
        ],
    )
    yield (
        "search/chunk-missing-crlf",
        [c.search(c.auth, b"Transfer-Encoding: chunked", body=b"5\r\nhello0\r\n\r\n"), behind],
    )
    yield (
        "search/chunk-bare-lf",
        [c.search(c.auth, b"Transfer-Encoding: chunked", body=b"5\nhello\n0\n\n"), behind],
    )


def header_lines(c: Corpus) -> Iterator[tuple[str, Case]]:
    """obs-fold, bare LF and CR, whitespace before a colon, NUL and control bytes, odd names."""
    t = c.token
    variants = {
        "obs-fold-before": [b"X-A: 1", b" continued", c.auth],
        "obs-fold-auth": [b"Authorization: Bearer", b" " + t],
        "obs-fold-tab": [c.auth, b"\tX-B: 2"],
        "bare-lf-between": [b"X-A: 1\n" + c.auth],
        "bare-cr-between": [b"X-A: 1\r" + c.auth],
        "space-before-colon": [b"Authorization : Bearer " + t],
        "tab-before-colon": [b"Authorization\t: Bearer " + t],
        "nul-in-value": [c.auth, b"X-Request-ID: a\x00b"],
        "nul-in-name": [c.auth, b"X-\x00A: 1"],
        "control-in-auth": [b"Authorization: Bearer " + t + b"\x01"],
        "del-in-auth": [b"Authorization: Bearer " + t + b"\x7f"],
        "space-in-name": [c.auth, b"X A: b"],
        "empty-name": [c.auth, b": x"],
        "no-colon": [c.auth, b"NoColonHere"],
        "tab-value": [b"Authorization:\tBearer " + t],
        "no-space-value": [b"Authorization:Bearer " + t],
        "tab-in-scheme": [b"Authorization: Bearer\t" + t],
        "two-spaces": [b"Authorization: Bearer  " + t],
        "lower-scheme": [b"Authorization: bearer " + t],
        "upper-scheme": [b"Authorization: BEARER " + t],
        "basic": [b"Authorization: Basic dXNlcjpwYXNz"],
        "no-token": [b"Authorization: Bearer"],
        "vertical-tab-lead": [b"Authorization:\x0bBearer " + t],
        "form-feed-lead": [b"Authorization:\x0cBearer " + t],
        "fs-lead": [b"Authorization:\x1cBearer " + t],
        "xff-in-other": [c.auth, b"X-Note: caf\xff"],
        "long-head-under": [c.auth, b"X-Pad: " + b"a" * 7900],
        "long-head-over": [c.auth, b"X-Pad: " + b"a" * 8300],
    }
    for name, headers in variants.items():
        yield f"headers/{name}", [c.search(*headers), c.hit(b"BEHIND")]


def request_lines(c: Corpus) -> Iterator[tuple[str, Case]]:
    """Absolute-form targets, lower-case methods and versions, HTTP/1.0 and odd request lines."""
    p = c.path
    lines = {
        "absolute-form": b"GET http://t" + p + b" HTTP/1.1",
        "lower-method": b"get " + p + b" HTTP/1.1",
        "mixed-method": b"Get " + p + b" HTTP/1.1",
        "http10": b"GET " + p + b" HTTP/1.0",
        "lower-version": b"GET " + p + b" http/1.1",
        "http12": b"GET " + p + b" HTTP/1.2",
        "http2": b"GET " + p + b" HTTP/2.0",
        "trailing-space": b"GET " + p + b" HTTP/1.1 ",
        "double-space": b"GET  " + p + b" HTTP/1.1",
        "tab-separator": b"GET\t" + p + b" HTTP/1.1",
        "leading-crlf": b"\r\nGET " + p + b" HTTP/1.1",
        "fragment": b"GET " + p + b"#x HTTP/1.1",
        "two-tags": b"GET " + p + b"&tag=other HTTP/1.1",
        "raw-non-ascii": b"GET " + unquote_to_bytes(c.wide) + b" HTTP/1.1",
        "encoded-non-ascii": b"GET " + c.wide + b" HTTP/1.1",
        "asterisk": b"OPTIONS * HTTP/1.1",
        "connect": b"CONNECT t:443 HTTP/1.1",
        "head": b"HEAD " + p + b" HTTP/1.1",
        "slash-before-query": b"GET " + p.replace(b"?", b"/?") + b" HTTP/1.1",
        "double-slash": b"GET /" + p + b" HTTP/1.1",
        "semicolon": b"GET " + p + b";x=1 HTTP/1.1",
        "no-version": b"GET " + p,
        "bare-lf-line": b"GET " + p + b" HTTP/1.1\n",
    }
    for name, line in lines.items():
        yield f"line/{name}", [c.search(c.auth, line=line), c.hit(b"BEHIND")]


def authorization_and_host(c: Corpus) -> Iterator[tuple[str, Case]]:
    """Repeated or odd Authorization and Host headers, and non-ASCII whitespace."""
    t, bad = c.token, b"Authorization: Bearer not.a.token"
    variants = {
        "auth-twice": [c.auth, c.auth],
        "auth-good-bad": [c.auth, bad],
        "auth-bad-good": [bad, c.auth],
        "no-host": None,
        "host-twice": [b"Host: u", c.auth],
        "host-non-ascii": [b"Host: caf\xc3\xa9", c.auth],
        "auth-nbsp-latin1": [b"Authorization:\xa0Bearer " + t],
        "auth-nel": [b"Authorization:\x85Bearer " + t],
        "auth-nbsp-utf8": [b"Authorization:\xc2\xa0Bearer " + t],
        "auth-em-space": [b"Authorization:\xe2\x80\x83Bearer " + t],
        "auth-nbsp-inside": [b"Authorization: Bearer\xa0" + t],
        "rid-nbsp": [c.auth, b"X-Request-ID:\xa0NBSP1"],
        "rid-twice": [c.auth, b"X-Request-ID: A1", b"X-Request-ID: B1"],
        "rid-tab": [c.auth, b"X-Request-ID:\tTAB1"],
        "rid-trailing-space": [c.auth, b"X-Request-ID: SP1 "],
    }
    for name, headers in variants.items():
        if headers is None:
            head = b"GET " + c.path + b" HTTP/1.1\r\n" + c.auth + b"\r\n\r\n"
        else:
            head = c.search(*headers)
        yield f"auth/{name}", [head, c.hit(b"BEHIND")]


def expect_upgrade_connection(c: Corpus) -> Iterator[tuple[str, Case]]:
    """100-continue, other expectations, upgrades, Connection headers, HTTP/1.0 keep-alive."""
    post = c.post(b"Expect: 100-continue")
    head, _, body = post.partition(b"\r\n\r\n")
    behind = c.hit(b"BEHIND")
    yield "expect/search-no-body", [c.search(c.auth, b"Expect: 100-continue"), behind]
    yield (
        "expect/search-body",
        [c.search(c.auth, b"Expect: 100-continue", b"Content-Length: 5"), b"hello", behind],
    )
    yield "expect/post-waits", [head + b"\r\n\r\n", body, behind]
    yield "expect/unknown", [c.search(c.auth, b"Expect: 101-foo"), behind]
    yield "upgrade/websocket", [c.search(c.auth, b"Connection: Upgrade", b"Upgrade: websocket"), behind]
    yield (
        "upgrade/h2c",
        [
            c.search(
                c.auth,
                b"Connection: Upgrade, HTTP2-Settings",
                b"Upgrade: h2c",
                b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            ),
            behind,
        ],
    )
    yield "connection/close", [c.search(c.auth, b"Connection: close"), behind]
    yield "connection/keep-alive-close", [c.search(c.auth, b"Connection: keep-alive, close"), behind]
    yield "http10/plain", [c.search(c.auth, line=b"GET " + c.path + b" HTTP/1.0"), behind]
    yield (
        "http10/keep-alive",
        [c.search(c.auth, b"Connection: keep-alive", line=b"GET " + c.path + b" HTTP/1.0"), behind],
    )


def pipelines(c: Corpus) -> Iterator[tuple[str, Case]]:
    """Pipelined hits behind partial, rejected or closing requests."""
    hit, victim = c.hit(b"BEHIND"), c.victim()
    big = c.post(body=b'{"msg": "' + b"x" * 70000 + b'"}')
    yields = {
        "bad-line": [b"BROKEN\r\n\r\n" + hit],
        "big-head": [c.search(c.auth, b"X-Pad: " + b"a" * 9000) + hit],
        "big-body": [big + hit],
        "partial-head": [c.hit(b"FIRST")[:40], c.hit(b"FIRST")[40:] + hit],
        "hit-then-partial": [c.hit(b"FIRST") + hit[:30], hit[30:] + victim],
        "hits-post-hit": [c.hit(b"A") + c.hit(b"B") + c.hit(b"C") + c.post(rid=b"P") + hit],
        "lean-hit-bad": [c.smuggled()["lean"] + hit + c.search(b"Authorization: Bearer x", rid=b"BAD")],
        "hit-http10-hit": [c.hit(b"A") + c.search(c.auth, line=b"GET " + c.path + b" HTTP/1.0") + hit],
        "hit-close-hit": [c.hit(b"A") + c.search(c.auth, b"Connection: close") + hit],
        "post-split-body": [c.post()[:-5], c.post()[-5:] + hit],
        "post-then-partial-post": [c.post(rid=b"P1") + c.post(rid=b"P2")[:20], c.post(rid=b"P2")[20:] + hit],
        "empty-lines": [b"\r\n\r\n" + hit],
    }
    for name, chunks in yields.items():
        yield f"pipeline/{name}", chunks


def corpus(c: Corpus) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for family in (
        bodies_of_answered_requests,
        lengths_and_encodings,
        header_lines,
        request_lines,
        authorization_and_host,
        expect_upgrade_connection,
        pipelines,
    ):
        for name, chunks in family(c):
            assert name not in cases, name
            cases[name] = chunks
    return cases


def splits(whole: bytes) -> dict[str, Case]:
    """The bytes split in two at every position."""
    return {f"split@{n}": [whole[:n], whole[n:]] for n in range(1, len(whole))}


def prepared_corpus(urls: list[str]) -> Corpus:
    """A corpus for a new user's verified token (cached by every server) and two tags (one ASCII,
    one not) with three tweets each, whose first page every server holds."""
    with httpx.Client(base_url=urls[0], timeout=10) as client:
        auth = register_and_login(client)[1]
        tag, wide = unique("frame"), unique("framé_")
        for n in range(3):
            r = client.post("/api/v1/tweet", json={"msg": f"#{tag} #{wide} tweet {n}"}, headers=auth)
            assert r.status_code == 201, r.text
    for url in urls:
        for name in (tag, wide):
            for _ in range(2):  # the first may be a miss
                r = httpx.get(f"{url}/api/v1/search-tweets", params={"tag": name}, headers=auth)
            assert r.status_code == 200 and r.headers["x-cache"] == "HIT", r.text
        assert httpx.get(f"{url}/api/v1/verify", headers=auth).status_code == 200
    return Corpus(auth["Authorization"].split()[1], tag, unique("framepost"), wide)
