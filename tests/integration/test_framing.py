"""Request framing: the protocol front (service/fastpath.py) and Sanic agree on where every request
begins. Each raw exchange goes to the service with the front on and to the same service with it
off, and both must answer with the same sequence of responses (tests/framing.py normalises only
what two servers may rightly differ in: generated request ids, new tweets' ids and times)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.settings import Settings
from tests.conftest import Server, start_server
from tests.framing import FRONT, Outcome, differences, exchange, header, outcome
from tests.framing_corpus import Corpus, bodies_of_answered_requests, corpus, prepared_corpus, splits


@pytest.fixture(scope="module")
def pair(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """The service with the front on and off; pages stay in each worker for the whole module."""
    on = start_server(urls, tmp_path_factory, LOCAL_CACHE_TTL="900", **FRONT["on"])
    off = start_server(urls, tmp_path_factory, LOCAL_CACHE_TTL="900", **FRONT["off"])
    yield on, off
    on.stop()
    off.stop()


@pytest.fixture(scope="module")
def c(pair: tuple[Server, Server]) -> Corpus:
    return prepared_corpus([server.url for server in pair])


def ports(pair: tuple[Server, Server]) -> tuple[int, int]:
    return pair[0].port, pair[1].port


def report(found: dict[str, tuple[Outcome, Outcome]]) -> str:
    return "\n".join(f"{name}:\n  on:  {a}\n  off: {b}" for name, (a, b) in list(found.items())[:5])


def test_a_request_hidden_in_the_body_of_an_answered_one_is_not_answered(
    pair: tuple[Server, Server], c: Corpus
) -> None:
    """The report's sequence: a cached search with a Content-Length and no body yet; after its 200,
    a search with X-Request-ID SMUGGLED1 as that body; then the victim's request. The body is
    discarded (it is no request) and the victim answered, front on as off."""
    smuggled = c.hit(b"SMUGGLED1")
    head = (
        b"GET "
        + c.path
        + b" HTTP/1.1\r\nHost: t\r\n"
        + c.auth
        + b"\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
    )
    on, off = (outcome(port, [head, smuggled, c.victim()], fresh=False) for port in ports(pair))
    assert on == off
    assert on.statuses() == [200, 200] and on.request_ids()[1] == b"VICTIM1", on
    assert b'"valid"' in on.responses[1]


def test_no_body_of_an_answered_request_is_ever_answered(pair: tuple[Server, Server], c: Corpus) -> None:
    """Every head Sanic answers before reading its body (a GET route, a 401, 404 or 405, HEAD),
    with a search, a deep search or a post hidden in the body by Content-Length or chunks, in the
    trailer, sent after the response or at once: no hidden request is answered, front on as off."""
    cases = dict(bodies_of_answered_requests(c))
    assert len(cases) >= 100
    for fresh in (False, True):
        found = differences(ports(pair), cases, fresh)
        assert not found, f"{len(found)} of {len(cases)} differ (fresh={fresh})\n{report(found)}"
    for name, chunks in list(cases.items())[::7]:
        got = outcome(pair[0].port, chunks, fresh=False)
        assert not any(rid.startswith(b"SMUGGLED") for rid in got.request_ids()), (name, got)


def test_the_corpus_is_answered_alike_front_on_and_off(pair: tuple[Server, Server], c: Corpus) -> None:
    """The whole corpus (tests/framing_corpus.py), each case after an answered request on its
    connection and again at once on a fresh one."""
    cases = corpus(c)
    assert len(cases) >= 150
    for fresh in (False, True):
        found = differences(ports(pair), cases, fresh)
        assert not found, f"{len(found)} of {len(cases)} differ (fresh={fresh})\n{report(found)}"


@pytest.mark.parametrize("kind", ["hit", "post", "hidden"])
def test_requests_split_at_every_byte_are_answered_alike(
    pair: tuple[Server, Server], c: Corpus, kind: str
) -> None:
    smuggled = c.hit(b"SMUGGLED1")
    whole = {
        "hit": c.hit(b"SPLIT") + c.victim(),
        "post": c.post(rid=b"SPLITPOST") + c.hit(b"SPLIT"),
        "hidden": c.early()["get-401"]
        + b"Content-Length: %d\r\n\r\n" % len(smuggled)
        + smuggled
        + c.victim(),
    }[kind]
    cases = splits(whole)
    found = differences(ports(pair), cases, fresh=False)
    assert not found, f"{len(found)} of {len(cases)} splits differ\n{report(found)}"


@pytest.mark.parametrize("digits", ["\u0665", "\uff15", "\u0035\u0301"])
def test_a_content_length_of_other_digits_than_ascii_is_400_and_closes(
    pair: tuple[Server, Server], c: Corpus, digits: str
) -> None:
    """Python's int() reads Arabic-Indic or full-width digits; RFC 9112 allows ASCII digits only."""
    body = b'{"msg": "#x y"}'[:5]
    request = c.post(body=body, length=digits.encode()) + c.hit(b"BEHIND")
    for port in ports(pair):
        got = exchange(port, [request])
        assert got.statuses() == [400] and got.closed, got
        assert b"content-length" in got.responses[0].lower()


def test_a_post_with_an_ascii_length_is_still_taken(pair: tuple[Server, Server], c: Corpus) -> None:
    for port in ports(pair):
        got = exchange(port, [c.post(rid=b"OK1") + c.hit(b"BEHIND")])
        assert got.statuses() == [201, 200] and not got.closed, got


def test_an_answer_written_before_a_body_that_may_yet_be_refused_says_close(
    pair: tuple[Server, Server], c: Corpus, settings: Settings
) -> None:
    """A search is answered before its body is read. Sanic then discards the body and closes on a
    chunked one it refuses, or one over the size limit: such an answer says close (a keep-alive
    answer followed by a close loses another client's request behind a balancer:
    test_framing_balancer.py). A Content-Length body within the limit is discarded and the
    connection kept, the next request answered."""
    big = b"x" * (settings.http.request_max_size + 1)
    closing = {
        "chunked": c.search(c.auth, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
        "chunked-with-trailer": c.search(
            c.auth, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
        "length-over-the-limit": c.search(c.auth, b"Content-Length: %d" % len(big), body=big),
    }
    kept = c.search(c.auth, b"Content-Length: 5")
    for port in ports(pair):
        for name, request in closing.items():
            got = exchange(port, [request, c.hit(b"BEHIND")])
            assert got.statuses() == [200] and got.closed, (name, got)
            assert header(got.responses[0], b"connection") == b"close", (name, got)
        got = exchange(port, [kept, b"hello" + c.hit(b"BEHIND")])
        assert got.statuses() == [200, 200] and not got.closed, got
        assert header(got.responses[0], b"connection") == b"keep-alive", got
