"""Request framing behind HAProxy configured as ops/balancer.py configures it (keep-alive to the
instances, `http-reuse safe`): a request hidden in a body never reaches another client as the
answer to its own request, and the corpus of hostile requests (tests/framing_corpus.py) is answered
alike through a balancer whose instance has the protocol front on and one whose instance has it off."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager

import pytest

from ops import balancer
from service.settings import Settings
from tests.conftest import TEST_ENV, free_port
from tests.framing import FRONT, Connection, differences, header
from tests.framing_corpus import Corpus, corpus, prepared_corpus


def started(resolved: Settings, front: str) -> balancer.Balancer:
    settings = dataclasses.replace(resolved, port=free_port())
    env = {k: v for k, v in TEST_ENV.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return balancer.Balancer(
        settings, [free_port()], env={**env, **FRONT[front], "LOCAL_CACHE_TTL": "900"}
    ).start()


@pytest.fixture(scope="module")
def balanced(resolved: Settings) -> Iterator[tuple[balancer.Balancer, balancer.Balancer]]:
    """A balancer in front of one instance with the front on, and one in front of one with it off."""
    on = started(resolved, "on")
    try:
        off = started(resolved, "off")
    except Exception:
        on.stop()
        raise
    yield on, off
    on.stop()
    off.stop()


@pytest.fixture(scope="module")
def c(balanced: tuple[balancer.Balancer, balancer.Balancer]) -> Corpus:
    return prepared_corpus([b.url for b in balanced])


ATTEMPTS = 200


@contextmanager
def alongside(client: Callable[[int], None], clients: int, stop: threading.Event) -> Iterator[None]:
    """`clients` threads running client(n) while the block runs; stopped and joined after it."""
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(30)


def test_no_client_ever_receives_another_clients_response(
    balanced: tuple[balancer.Balancer, balancer.Balancer], c: Corpus
) -> None:
    """An attacker sends a cached search with a Content-Length and, once answered, a search as its
    body, 200 times, while three other keep-alive clients send their own requests: each client
    receives the answers to its own requests only, and no hidden request is ever answered."""
    port = balanced[0].settings.port
    stop = threading.Event()
    wrong: list[tuple[str, bytes]] = []
    answered = [0, 0, 0]

    def client(n: int) -> None:
        conn = Connection(port)
        try:
            i = 0
            while not stop.is_set():
                rid = f"VICTIM{n}-{i}".encode()
                conn.send(
                    b"GET /api/v1/verify HTTP/1.1\r\nHost: t\r\n"
                    + c.auth
                    + b"\r\nX-Request-ID: "
                    + rid
                    + b"\r\n\r\n"
                )
                got = conn.response()
                if header(got, b"x-request-id") != rid:
                    wrong.append((rid.decode(), got[:300]))
                answered[n] += 1
                i += 1
        finally:
            conn.close()

    with closing(Connection(port)) as attacker, alongside(client, 3, stop):
        for k in range(ATTEMPTS):
            hidden = c.hit(f"SMUGGLED{k}".encode())
            attacker.send(
                b"GET "
                + c.path
                + b" HTTP/1.1\r\nHost: t\r\n"
                + c.auth
                + b"\r\nX-Request-ID: ATTACK"
                + str(k).encode()
                + b"\r\nContent-Length: %d\r\n\r\n" % len(hidden)
            )
            got = attacker.response()
            assert header(got, b"x-request-id") == f"ATTACK{k}".encode(), got[:300]
            attacker.send(hidden)
    assert not wrong, f"{len(wrong)} responses reached the wrong client: {wrong[:3]}"
    assert min(answered) > 0


@pytest.mark.parametrize("body", ["chunked-with-trailer", "length-over-the-limit"])
def test_a_body_refused_after_an_early_answer_never_drops_another_clients_request(
    balanced: tuple[balancer.Balancer, balancer.Balancer], c: Corpus, body: str
) -> None:
    """A search answered before its body is read, the body then refused by Sanic as it discards it
    (a chunked trailer; a Content-Length over REQUEST_MAX_SIZE): the connection closes after the
    answer. Had the answer promised keep-alive, HAProxy would give that idle connection to another
    client's request, meet the close and drop that client's connection unanswered (hundreds of
    times in 3 s here, front on and off). It says close, so four keep-alive clients lose none."""
    big = b"x" * (balanced[0].settings.http.request_max_size + 1)
    attack = {
        "chunked-with-trailer": c.search(
            c.auth, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        "length-over-the-limit": c.search(c.auth, b"Content-Length: %d" % len(big), body=big),
    }[body]
    port = balanced[0].settings.port
    stop = threading.Event()
    dropped: list[str] = []
    answered = [0] * 4

    def client(n: int) -> None:
        conn = Connection(port)
        while not stop.is_set():
            conn.send(b"GET /api/v1/verify HTTP/1.1\r\nHost: t\r\n" + c.auth + b"\r\n\r\n")
            try:
                got = conn.response()
            except OSError as exc:  # ConnectionError included
                dropped.append(repr(exc))
                conn.close()
                conn = Connection(port)
                continue
            assert got.startswith(b"HTTP/1.1 200"), got[:200]
            answered[n] += 1
        conn.close()

    attacks = 0
    with closing(Connection(port)) as attacker, alongside(client, 4, stop):
        end = time.monotonic() + 3
        while time.monotonic() < end:
            attacker.send(attack)
            got = attacker.response()
            assert got.startswith(b"HTTP/1.1 200"), got[:200]
            attacks += 1
    assert not dropped, f"{len(dropped)} other clients' requests dropped in {attacks} attacks: {dropped[:3]}"
    assert attacks > 20 and min(answered) > 0, (attacks, answered)


def test_the_corpus_through_the_balancer_is_answered_alike_front_on_and_off(
    balanced: tuple[balancer.Balancer, balancer.Balancer], c: Corpus
) -> None:
    cases = corpus(c)
    ports = (balanced[0].settings.port, balanced[1].settings.port)
    for fresh in (False, True):
        found = differences(ports, cases, fresh)
        assert not found, f"{len(found)} of {len(cases)} differ (fresh={fresh}): " + "\n".join(
            f"{name}:\n  on:  {a}\n  off: {b}" for name, (a, b) in list(found.items())[:5]
        )
