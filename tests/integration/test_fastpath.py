"""The protocol's fast path for searches (service/fastpath.py: cached hits, and lean searches for
the rest) against the framework path: the same bytes, in the same order, on real servers; and every
request it must leave to Sanic."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from ops.hosts import via
from service.settings import Settings
from tests.conftest import Server, register_and_login, start_server, unique, wait_until
from tests.proxy import Proxy

Response = tuple[int, dict[str, str], bytes, bytes]  # status, headers, body, raw head


class Conn:
    """One keep-alive connection speaking raw HTTP/1.1: requests written as given, responses
    framed by Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, head_only: bool = False) -> Response:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._more()
        head = self.buf[:end]
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        total = end + 4 + (0 if head_only else int(headers.get("content-length", "0")))
        while len(self.buf) < total:
            self._more()
        body, self.buf = self.buf[end + 4:total], self.buf[total:]
        return int(lines[0].split()[1]), headers, body, head

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def closed(self) -> bool:
        """Has the server closed the connection (nothing more to read)?"""
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def search(tag: str, token: str, extra: str = "", rid: str | None = None, query: str = "") -> bytes:
    head = f"GET /api/v1/search-tweets?{query or 'tag=' + quote(tag)}{extra} HTTP/1.1\r\nHost: t\r\n"
    head += f"Authorization: Bearer {token}\r\n" if token else ""
    head += f"X-Request-ID: {rid}\r\n" if rid is not None else ""
    return (head + "\r\n").encode()


def fast_hits(server: Server) -> int:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("fast_hits_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no fast_hits_total in /metrics")


@pytest.fixture(scope="module")
def pair(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """The same service with the fast path (hits, lean searches and posts) on and off; pages stay in
    the in-process cache 60 s."""
    fast = start_server(urls, tmp_path_factory, LOCAL_CACHE_TTL="60", USE_FAST_HITS="true",
                        USE_LEAN_SEARCH="true", USE_LEAN_POST="true")
    slow = start_server(urls, tmp_path_factory, LOCAL_CACHE_TTL="60", USE_FAST_HITS="false",
                        USE_LEAN_SEARCH="false", USE_LEAN_POST="false")
    yield fast, slow
    fast.stop()
    slow.stop()


@pytest.fixture(scope="module")
def token(pair: tuple[Server, Server]) -> str:
    with httpx.Client(base_url=pair[0].url, timeout=10) as c:
        auth = register_and_login(c)[1]
    token = auth["Authorization"].split()[1]
    for server in pair:  # verified once by each, so each has it cached
        assert httpx.get(f"{server.url}/api/v1/me", headers=auth).status_code == 200
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_request(token: str, msg: str, rid: str = "") -> bytes:
    body = f'{{"msg": "{msg}"}}'.encode()
    head = f"POST /api/v1/tweet HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
    head += f"X-Request-ID: {rid}\r\n" if rid else ""
    return f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def posted(server: Server, token: str, msg: str) -> int:
    r = httpx.post(f"{server.url}/api/v1/tweet", json={"msg": msg}, headers=bearer(token))
    assert r.status_code == 201, r.text
    return int(r.json()["data"]["id"])


def user_and_tag(server: Server, prefix: str) -> tuple[str, str]:
    """A new user's token and a new tag with one tweet of theirs."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        token = register_and_login(c)[1]["Authorization"].split()[1]
    tag = unique(prefix)
    posted(server, token, f"#{tag} first")
    return token, tag


def twice(server: Server, request: bytes) -> tuple[Response, Response]:
    """The request on one connection, then again: the second is answered from the worker's page."""
    conn = Conn(server.port)
    try:
        conn.send(request)
        first = conn.read()
        conn.send(request)
        return first, conn.read()
    finally:
        conn.close()


def same(a: Response, b: Response) -> None:
    """Equal status, headers and body; the generated X-Request-ID only in form."""
    ha, hb = dict(a[1]), dict(b[1])
    ida, idb = ha.pop("x-request-id"), hb.pop("x-request-id")
    assert (a[0], ha, a[2]) == (b[0], hb, b[2])
    assert ida.split("-")[0].isalnum() and idb.split("-")[0].isalnum()
    assert list(a[1]) == list(b[1])  # the same headers in the same order


def test_answers_equal_the_framework_path_over_a_matrix_of_queries(pair: tuple[Server, Server],
                                                                    token: str) -> None:
    fast, slow = pair
    tag, wide = unique("fp"), "café" + unique("_")
    ids = [posted(fast, token, f"#{tag} #{wide} tweet {i}") for i in range(12)]
    before = fast_hits(fast)
    matrix = [(tag, ""), (tag, "&page=2&page_size=5"), (tag, "&page_size=1"), (tag, f"&before_id={ids[5]}"),
              (tag.upper(), ""), (wide, ""), (wide, "&page_size=100"), (unique("none"), ""),
              (tag, "&page=99")]
    for name, extra in matrix:
        for rid in (None, "client-id.1", "bad id!"):
            request = search(name, token, extra, rid)
            (_, a), (_, b) = twice(fast, request), twice(slow, request)
            same(a, b)
            assert a[0] == 200 and a[1]["x-cache"] == "HIT", (name, extra, a)
            assert a[1]["x-request-id"] == (rid if rid == "client-id.1" else a[1]["x-request-id"])
            if rid != "client-id.1":
                assert a[1]["x-request-id"] != "bad id!"
    # Every second request answered fast (a first one too, where its page was already there).
    assert fast_hits(fast) - before >= len(matrix) * 3
    assert fast_hits(slow) == 0


def test_what_the_fast_path_leaves_to_the_framework_is_answered_as_before(pair: tuple[Server, Server],
                                                                          token: str) -> None:
    fast, slow = pair
    tag = unique("fl")
    posted(fast, token, f"#{tag} one")
    # the page in Redis first, so each side's first answer is a HIT alike (the post's own cache
    # update may land after its 201, and one side's miss would fill Redis for the other)
    warm = httpx.get(f"{slow.url}/api/v1/search-tweets", params={"tag": tag}, headers=bearer(token))
    assert warm.status_code == 200
    variants = [search(tag, "not-a-token"), search(tag, ""), search(tag, token, query="tag="),
                search(tag, token, query=f"tag={tag}&page=0"),
                search(tag, token, query=f"tag={tag}&page_size=x"),
                search(tag, token).replace(b"GET ", b"HEAD ", 1),
                search(tag, token).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
                search(tag, token).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
                search(tag, token).replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
                search(tag, token).replace(b"search-tweets?", b"search-tweets/?", 1),
                search(tag, token, query=f"tag={tag}#frag")]
    before = fast_hits(fast)
    for request in variants:
        conn_a, conn_b = Conn(fast.port), Conn(slow.port)
        for conn in (conn_a, conn_b):  # the variant when Sanic waits for a connection's next request
            conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            assert conn.read()[0] == 200
            conn.send(request)
        head_only = request.startswith(b"HEAD ")
        a, b = conn_a.read(head_only), conn_b.read(head_only)
        if not head_only:
            same(a, b)
        else:
            assert (a[0], a[2]) == (b[0], b[2])
        conn_a.close()
        conn_b.close()
    assert fast_hits(fast) == before


def test_ten_pipelined_requests_fast_and_slow_mixed_are_answered_in_order(pair: tuple[Server, Server],
                                                                         token: str) -> None:
    fast, _ = pair
    hot, other = unique("ph"), unique("po")
    posted(fast, token, f"#{hot} hot")
    conn = Conn(fast.port)
    conn.send(search(hot, token))
    assert conn.read()[0] == 200  # the hot page is now in the worker
    kinds = ["hit", "miss", "hit", "bad", "hit", "post", "hit", "miss", "hit", "hit"]
    burst = b""
    for i, kind in enumerate(kinds):
        rid = f"req-{i}"
        if kind == "hit":
            burst += search(hot, token, rid=rid)
        elif kind == "miss":
            burst += search(unique("pm"), token, rid=rid)
        elif kind == "bad":
            burst += search(hot, "bad.token.here", rid=rid)
        else:
            burst += post_request(token, f"#{other} pipelined", rid)
    before = fast_hits(fast)
    conn.send(burst)
    answers = [conn.read() for _ in kinds]
    conn.close()
    assert [a[1]["x-request-id"] for a in answers] == [f"req-{i}" for i in range(10)]
    expected = {"hit": 200, "miss": 200, "bad": 401, "post": 201}
    assert [a[0] for a in answers] == [expected[k] for k in kinds]
    assert all(a[1]["x-cache"] == "HIT" and hot.encode() in a[2] for a, k in zip(answers, kinds, strict=True)
               if k == "hit")
    assert fast_hits(fast) - before >= 1  # at least the leading hit; the rest may follow Sanic


def test_a_request_split_at_every_byte_is_answered_whole(pair: tuple[Server, Server], token: str) -> None:
    fast, slow = pair
    tag = unique("sp")
    posted(fast, token, f"#{tag} split")
    request = search(tag, token, rid="split-1")
    expected = twice(slow, request)[1]
    conn = Conn(fast.port)
    conn.send(request)
    conn.read()
    for cut in range(1, len(request)):
        conn.send(request[:cut])
        time.sleep(0.001)
        conn.send(request[cut:])
        answer = conn.read()
        assert (answer[0], answer[2], answer[1]["x-request-id"]) == (200, expected[2], "split-1"), cut
    conn.send(request * 2)
    assert [conn.read()[2] for _ in range(2)] == [expected[2]] * 2
    conn.close()


def test_a_bad_token_after_a_good_one_on_the_same_connection(pair: tuple[Server, Server], token: str) -> None:
    fast, slow = pair
    tag = unique("bt")
    posted(fast, token, f"#{tag} x")
    conn = Conn(fast.port)
    conn.send(search(tag, token))
    conn.read()
    conn.send(search(tag, token) + search(tag, token + "x") + search(tag, token))
    good, bad, again = conn.read(), conn.read(), conn.read()
    conn.close()
    assert (good[0], bad[0], again[0]) == (200, 401, 200)
    assert b'"code":"unauthorized"' in bad[2] and "invalid_token" in bad[1]["www-authenticate"]
    expected_bad = Conn(slow.port)
    expected_bad.send(search(tag, token + "x"))
    same(bad, expected_bad.read())
    expected_bad.close()


def test_a_post_on_the_other_worker_between_two_pipelined_searches(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(urls, tmp_path_factory, WORKERS="2", LOCAL_CACHE_TTL="60")
    try:
        token, tag = user_and_tag(server, "xw")
        conns: dict[str, Conn] = {}
        deadline = time.monotonic() + 30
        while len(conns) < 2 and time.monotonic() < deadline:  # one connection to each worker
            conn = Conn(server.port)
            conn.send(search(tag, token))
            worker = conn.read()[1]["x-request-id"].split("-")[0]
            if worker in conns:
                conn.close()
            else:
                conns[worker] = conn
        assert len(conns) == 2, "the kernel never spread connections over both workers"
        reader, writer = conns.values()
        for _ in range(3):  # the reader's worker answers from its page from now on
            reader.send(search(tag, token))
            assert reader.read()[1]["x-cache"] == "HIT"
        writer.send(post_request(token, f"#{tag} second"))
        new_id = int(writer.read()[2].split(b'"id":')[1].split(b",")[0])
        seen: list[bool] = []
        deadline = time.monotonic() + 5
        while not (seen and all(seen[-2:])) and time.monotonic() < deadline:
            reader.send(search(tag, token) + search(tag, token))
            pair = [reader.read(), reader.read()]
            seen += [f'"id":{new_id},'.encode() in r[2] for r in pair]
        # Once one search shows the post, none after it on the connection misses it.
        assert seen and seen[-1], "the reader's worker never showed the other worker's post"
        assert seen[seen.index(True):] == [True] * (len(seen) - seen.index(True))
        for conn in conns.values():
            conn.close()
    finally:
        server.stop()


def test_shutdown_during_a_pipelined_burst_answers_or_closes(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(urls, tmp_path_factory, LOCAL_CACHE_TTL="60", SHUTDOWN_DRAIN_SECONDS="0.5")
    try:
        token, tag = user_and_tag(server, "sd")
        conn = Conn(server.port)
        conn.send(search(tag, token))
        conn.read()
        assert server.proc is not None
        conn.send(search(tag, token) * 50)
        server.proc.send_signal(15)
        conn.send(search(tag, token) * 50)
        answered = 0
        try:
            while answered < 100:
                status, _, body, _ = conn.read()
                assert status == 200 and tag.encode() in body
                answered += 1
        except (ConnectionError, OSError):
            pass
        # Every answer whole and right, in order; then the draining worker closes the connection
        # (a client retries what was never answered), or it answered them all.
        assert answered >= 1 and (answered == 100 or conn.closed())
        conn.close()
    finally:
        server.stop()


def counter(server: Server, name: str) -> int:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no {name} in /metrics")


def test_lean_searches_equal_the_framework_path(pair: tuple[Server, Server], token: str) -> None:
    """A search the worker has not cached, answered at the protocol (lean) and by Sanic: the same
    bytes but the request id, and X-Cache MISS or HIT (Redis's: one side fills it for the other)."""
    fast, slow = pair
    tag, wide = unique("ln"), "smörgås" + unique("_")
    ids = [posted(fast, token, f"#{tag} #{wide} tweet {i}") for i in range(12)]
    matrix = [(tag, ""), (tag, "&page=2&page_size=5"), (tag, f"&before_id={ids[5]}"),
              (wide, "&page_size=100"), (unique("none"), ""), (tag, "&page=99")]
    before = counter(fast, "lean_searches_total") + counter(fast, "fast_hits_total")
    a, b = Conn(fast.port), Conn(slow.port)  # kept alive: a connection's first request is Sanic's
    for conn in (a, b):
        conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.read()[0] == 200
    for name, extra in matrix:
        for rid in (None, "client-id.2"):
            request = search(name, token, extra, rid) if rid else search(name, token, extra + "&page_size=7")
            a.send(request)
            lean = a.read()
            b.send(request)
            framework = b.read()
            assert lean[1]["x-cache"] in ("MISS", "HIT") and framework[1]["x-cache"] in ("MISS", "HIT")
            lean[1]["x-cache"] = framework[1]["x-cache"]
            same(lean, framework)
    a.close()
    b.close()
    # Every one answered at the protocol: lean, or a hit where posting left the page in the worker.
    # (/metrics adds up every worker's counts as flushed each second: wait for this one's.)
    def protocol_answers() -> int:
        return counter(fast, "lean_searches_total") + counter(fast, "fast_hits_total") - before
    wait_until(lambda: protocol_answers() >= len(matrix) * 2, 10, "protocol answers")
    time.sleep(1.5)  # one more flush: nothing beyond these requests was counted
    assert protocol_answers() == len(matrix) * 2
    assert counter(slow, "lean_searches_total") == 0


@pytest.fixture(scope="module")
def bypass_pair(urls: tuple[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """The cache switched off: every search is PostgreSQL's, lean or through Sanic."""
    lean = start_server(urls, tmp_path_factory, CACHE_ENABLED="false", USE_LEAN_SEARCH="true")
    framework = start_server(urls, tmp_path_factory, CACHE_ENABLED="false", USE_LEAN_SEARCH="false")
    yield lean, framework
    lean.stop()
    framework.stop()


def test_lean_bypass_searches_pipelined_equal_the_framework_path(bypass_pair: tuple[Server, Server],
                                                                 token: str) -> None:
    lean, framework = bypass_pair
    tag = unique("lb")
    for i in range(3):
        posted(lean, token, f"#{tag} bypassed {i}")
    ping = b"GET /ping HTTP/1.1\r\nHost: t\r\nX-Request-ID: b-3\r\n\r\n"
    burst = (search(tag, token, rid="b-0") + search(tag, token, "&page_size=2", rid="b-1")
             + search(tag, "bad.token", rid="b-2") + ping + search(tag, token, rid="b-4"))
    answers = []
    for server in bypass_pair:
        conn = Conn(server.port)
        conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")  # a connection's first request is Sanic's
        assert conn.read()[0] == 200
        conn.send(burst)
        answers.append([conn.read() for _ in range(5)])
        conn.close()
    for a, b in zip(*answers, strict=True):
        same(a, b)
    assert [a[0] for a in answers[0]] == [200, 200, 401, 200, 200]
    assert [a[1]["x-request-id"] for a in answers[0]] == [f"b-{i}" for i in range(5)]
    assert answers[0][0][1]["x-cache"] == "BYPASS"
    # the two leading searches answered lean; from the bad token on, everything is Sanic's
    wait_until(lambda: counter(lean, "lean_searches_total") >= 2, 10, "lean count")
    time.sleep(1.5)  # one more flush: nothing beyond these was counted
    assert counter(lean, "lean_searches_total") == 2
    assert counter(framework, "lean_searches_total") == 0


def raw_post(token: str, body: bytes, rid: str = "", extra: str = "") -> bytes:
    head = f"POST /api/v1/tweet HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n{extra}"
    head += f"X-Request-ID: {rid}\r\n" if rid else ""
    return f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def same_post(a: Response, b: Response) -> None:
    """Equal as `same`, but a new tweet's own id and time, which differ by nature."""
    if a[0] == b[0] == 201:
        ta, tb = json.loads(a[2]), json.loads(b[2])
        for t in (ta, tb):
            assert isinstance(t["data"].pop("id"), int) and t["data"].pop("created_at")
        assert ta == tb
        a, b = (a[0], a[1], b"", a[3]), (b[0], {**b[1], "content-length": a[1]["content-length"]}, b"", b[3])
    same(a, b)


def test_lean_posts_equal_the_framework_path(pair: tuple[Server, Server], token: str) -> None:
    """The same posts, valid and not, through the protocol and through Sanic: the same status,
    headers (in order) and body but the new tweet's id and time; invalid ones are Sanic's on both."""
    fast, slow = pair
    tag = unique("lp")
    valid = [raw_post(token, json.dumps({"msg": f"#{tag} one"}).encode()),
             raw_post(token, json.dumps({"msg": f"#{tag} smörgås 😀 ümlaut"}, ensure_ascii=False).encode(),
                      rid="client-post.1"),
             raw_post(token, json.dumps({"msg": "tagged by list", "tags": [tag, "Zweite"]}).encode()),
             raw_post(token, json.dumps({"msg": f"#{tag} escaped \u00e9", "tags": None}).encode(),
                      rid="bad id!")]
    invalid = [raw_post(token, b"{not json"), raw_post(token, b"[1, 2]"), raw_post(token, b"{}"),
               raw_post(token, b'{"msg": "   "}'), raw_post(token, b'{"msg": 5}'),
               raw_post(token, json.dumps({"msg": "x" * 300}).encode()),
               raw_post(token, b'{"msg": "a", "tags": "notalist"}'),
               raw_post(token, b'{"msg": "nul \\u0000"}'), raw_post(token, b""),
               raw_post("not.a.token", b'{"msg": "hi"}'), raw_post("", b'{"msg": "hi"}')]
    before = counter(fast, "lean_posts_total")
    conns = [Conn(fast.port), Conn(slow.port)]
    for conn in conns:  # kept alive: a connection's first request is Sanic's
        conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.read()[0] == 200
    for request in valid + invalid:
        answers = []
        for conn in conns:
            conn.send(request)
            answers.append(conn.read())
        same_post(*answers)
    statuses = [s for s, *_ in answers]
    assert statuses == [401, 401]
    for conn in conns:
        conn.close()
    wait_until(lambda: counter(fast, "lean_posts_total") - before >= len(valid), 10, "lean post count")
    time.sleep(1.5)  # one more flush: the invalid ones were not counted
    assert counter(fast, "lean_posts_total") - before == len(valid)
    assert counter(slow, "lean_posts_total") == 0
    found = httpx.get(f"{fast.url}/api/v1/search-tweets", params={"tag": tag, "page_size": 100},
                      headers=bearer(token)).json()["data"]
    assert len(found) == 2 * len(valid)  # every valid post, on both servers, and nothing else


def test_lean_posts_pipelined_with_searches_answer_in_order_and_read_their_writes(
        pair: tuple[Server, Server], token: str) -> None:
    fast, _ = pair
    tag = unique("lq")
    conn = Conn(fast.port)
    conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
    assert conn.read()[0] == 200
    burst = b""
    for i in range(5):  # post, then search its tag, five times, in one write
        burst += raw_post(token, f'{{"msg": "#{tag} n{i}"}}'.encode(), rid=f"q-{2 * i}")
        burst += search(tag, token, rid=f"q-{2 * i + 1}")
    burst += raw_post(token, b"{broken", rid="q-10")
    burst += raw_post(token, f'{{"msg": "#{tag} last"}}'.encode(), rid="q-11")
    conn.send(burst)
    answers = [conn.read() for _ in range(12)]
    assert [a[1]["x-request-id"] for a in answers] == [f"q-{i}" for i in range(12)]
    assert [a[0] for a in answers] == [201, 200] * 5 + [400, 201]
    for i in range(5):  # each search shows every post before it on the connection
        seen = [t["id"] for t in json.loads(answers[2 * i + 1][2])["data"]]
        posts = [json.loads(answers[2 * j][2])["data"]["id"] for j in range(i + 1)]
        assert sorted(posts, reverse=True) == seen
    conn.close()


def test_a_post_whose_body_trickles_in_is_answered_whole(pair: tuple[Server, Server], token: str) -> None:
    fast, _ = pair
    tag = unique("lt")
    request = raw_post(token, f'{{"msg": "#{tag} split"}}'.encode())
    split_points = [request.find(b"\r\n\r\n") + 4, request.find(b"\r\n\r\n") + 10, len(request) - 1, 7]
    conn = Conn(fast.port)
    conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
    assert conn.read()[0] == 200
    for cut in split_points:
        conn.send(request[:cut])
        time.sleep(0.05)  # the first part arrives alone (a later one only adds to it)
        conn.send(request[cut:])
        status, _, body, _ = conn.read()
        assert status == 201 and f"#{tag} split".encode() in body
    conn.close()
    found = httpx.get(f"{fast.url}/api/v1/search-tweets", params={"tag": tag}, headers=bearer(token))
    assert len(found.json()["data"]) == len(split_points)


def test_a_lean_post_whose_client_hangs_up_after_the_commit_still_reaches_the_cache(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The lean post runs to its end when its connection is lost: the cache update after the
    commit (held back 0.3 s here) is not cut off, so a search shows the tweet, from the cache."""
    import asyncpg

    server = start_server(urls, tmp_path_factory, WORKERS="1", LOCAL_CACHE_TTL="60",
                          FAULT_POST_CACHE_DELAY_MS="300")
    try:
        token, tag = user_and_tag(server, "lh")
        first = httpx.get(f"{server.url}/api/v1/search-tweets", params={"tag": tag}, headers=bearer(token))
        assert first.status_code == 200 and len(first.json()["data"]) == 1  # the tag's page is cached
        conn = Conn(server.port)
        conn.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.read()[0] == 200  # a connection's first request is always Sanic's
        conn.send(post_request(token, f"#{tag} then gone"))

        async def committed() -> int:
            db = await asyncpg.connect(urls[0])
            try:
                return int(await db.fetchval("SELECT count(*) FROM tweet_tags WHERE tag = $1", tag))
            finally:
                await db.close()

        wait_until(lambda: asyncio.run(committed()) == 2, 10, "the post committed")
        conn.close()  # hung up while the cache update waits

        def shown() -> bool:
            r = httpx.get(f"{server.url}/api/v1/search-tweets", params={"tag": tag}, headers=bearer(token))
            return r.headers["x-cache"] == "HIT" and len(r.json()["data"]) == 2

        wait_until(shown, 5, "the tweet in the cached page")
    finally:
        server.stop()


def test_a_failed_lean_search_is_answered_once_as_the_framework_answers_it(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> None:
    """PostgreSQL cut off (its forwarder swallows every byte) under a search that misses: the lean
    search's 503 is the framework path's, byte for byte but the request id, and comes after one
    statement deadline (DB_COMMAND_TIMEOUT, 1 s here), not two: it is not run again through Sanic."""
    proxy = Proxy(settings.stack_pg_port)
    database = via(urls[0], "127.0.0.1", proxy.port)
    env = {"DATABASE_URL": database, "DB_COMMAND_TIMEOUT": "1", "DB_STATEMENT_TIMEOUT": "0.8",
           "DB_ACQUIRE_TIMEOUT": "1"}
    servers = [start_server(urls, tmp_path_factory, **env, USE_FAST_HITS=on, USE_LEAN_SEARCH=on,
                            USE_LEAN_POST=on) for on in ("true", "false")]
    try:
        with httpx.Client(base_url=servers[0].url, timeout=10) as c:
            auth = register_and_login(c)[1]
        token = auth["Authorization"].split()[1]
        conns = [Conn(s.port) for s in servers]
        for conn in conns:  # the token verified and cached by each, and the connection in use
            conn.send(b"GET /api/v1/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                      + token.encode() + b"\r\n\r\n")
            assert conn.read()[0] == 200
        proxy.blackhole = True
        answers, took = [], []
        for conn in conns:
            began = time.monotonic()
            conn.send(search(unique("cut"), token))
            answers.append(conn.read())
            took.append(time.monotonic() - began)
        assert answers[0][0] == 503, answers[0]
        same(answers[0], answers[1])
        assert took[0] < 1.8, took  # one deadline (a second run through Sanic: two)
    finally:
        proxy.close()
        for server in servers:
            server.stop()
