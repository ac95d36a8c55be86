"""The lean Redis client (service/cache/wire.py) against the real test Redis: replies matched to
callers under pipelining, errors that leave the stream usable, timeouts and lost connections that
fail what is in flight and recover on the next command."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ops import redis_server
from service.cache.wire import WireClient
from service.settings import Settings
from tests.conftest import RedisUser, unique
from tests.proxy import Proxy

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_concurrent_commands_get_their_own_replies(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[list[object], list[object]]:
        wire = WireClient(urls[1], timeout=1.0, connect_timeout=1.0)
        key = unique("w")
        try:
            writes = await asyncio.gather(*(wire.call("SET", f"{key}:{i}", f"v{i}é") for i in range(200)))
            reads = await asyncio.gather(*(wire.call("GET", f"{key}:{i}") for i in range(200)))
            reads += [await wire.call("GET", f"{key}:missing"), await wire.call("INCR", f"{key}:n")]
            return writes, reads
        finally:
            await wire.aclose()

    writes, reads = run(scenario())
    assert writes == [b"OK"] * 200
    assert reads == [f"v{i}é".encode() for i in range(200)] + [None, 1]


def test_several_commands_in_one_call_get_their_replies_among_single_calls(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[Any, ...]:
        wire = WireClient(urls[1], timeout=1.0, connect_timeout=1.0)
        key = unique("w")
        try:
            first = await wire.call_many([("SET", f"{key}:a", "1"), ("SET", f"{key}:b", "2é")])  # connects
            together = await asyncio.gather(
                wire.call("GET", f"{key}:a"),
                wire.call_many([("GET", f"{key}:b"), ("INCR", f"{key}:a"), ("GET", f"{key}:none")]),
                wire.call("GET", f"{key}:b"), wire.call_many([]))
            failed = await asyncio.gather(
                wire.call_many([("INCR", f"{key}:b"), ("EVALSHA", "0" * 40, 0), ("GET", f"{key}:a")]),
                return_exceptions=True)
            return first, together, failed, [await wire.call("GET", f"{key}:a")]
        finally:
            await wire.aclose()

    first, together, failed, later = run(scenario())
    assert first == [b"OK", b"OK"]
    assert together == [b"1", ["2é".encode(), 2, None], "2é".encode(), []]
    assert len(failed) == 1 and isinstance(failed[0], ResponseError)  # the first error among them
    assert not isinstance(failed[0], NoScriptError) and later == [b"2"]  # and the stream in step


def test_error_replies_are_raised_and_the_stream_stays_usable(urls: tuple[str, str]) -> None:
    async def scenario() -> list[object]:
        wire = WireClient(urls[1], timeout=1.0, connect_timeout=1.0)
        key = unique("w")
        try:
            results = await asyncio.gather(
                wire.call("SET", key, "text"), wire.call("INCR", key), wire.call("EVALSHA", "0" * 40, 0),
                wire.call("GET", key), return_exceptions=True)
            return [*results, await wire.call("GET", key)]
        finally:
            await wire.aclose()

    ok, not_a_number, no_script, value, later = run(scenario())
    assert ok == b"OK" and value == b"text" and later == b"text"
    assert isinstance(not_a_number, ResponseError) and not isinstance(not_a_number, NoScriptError)
    assert isinstance(no_script, NoScriptError)  # TagCache reloads its scripts on this


def test_a_silent_redis_times_out_and_the_client_recovers(settings: Settings, urls: tuple[str, str]) -> None:
    proxy = Proxy(settings.stack_redis_port)

    async def scenario() -> tuple[float, tuple[object, ...], object]:
        wire = WireClient(redis_server.url_at(settings, proxy.port), timeout=0.3, connect_timeout=1.0)
        try:
            assert await wire.call("PING") == b"PONG"
            proxy.blackhole = True
            started = time.monotonic()
            stuck = await asyncio.gather(wire.call("PING"), wire.call("PING"), return_exceptions=True)
            waited = time.monotonic() - started
            proxy.blackhole = False
            return waited, stuck, await wire.call("PING")  # a new connection
        finally:
            await wire.aclose()

    try:
        waited, stuck, after = run(scenario())
    finally:
        proxy.close()
    assert all(isinstance(e, RedisTimeoutError) for e in stuck)
    # answered by the 0.3 s timeout, not by the proxy (which never answers): well before a
    # hang would show, with room for a loaded machine
    assert 0.25 <= waited < 5.0
    assert after == b"PONG"


def test_a_lost_connection_fails_what_is_in_flight_then_reconnects(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[object, object]:
        wire = WireClient(urls[1], timeout=5.0, connect_timeout=1.0)
        other = aredis.Redis.from_url(urls[1])
        try:
            me = await wire.call("CLIENT", "ID")
            in_flight = asyncio.ensure_future(wire.call("BLPOP", unique("never"), 3))
            await asyncio.sleep(0.1)
            await other.execute_command("CLIENT", "KILL", "ID", me)  # type: ignore[no-untyped-call]  # as a Redis restart or a network reset
            lost = (await asyncio.gather(in_flight, return_exceptions=True))[0]
            return lost, await wire.call("PING")
        finally:
            await wire.aclose()
            await other.aclose()

    lost, after = run(scenario())
    assert isinstance(lost, RedisConnectionError)
    assert after == b"PONG"


@pytest.mark.parametrize("url_password", ["wrong-password"])
def test_a_wrong_password_is_an_error_not_a_hang(settings: Settings, urls: tuple[str, str],
                                                 url_password: str) -> None:
    async def scenario() -> object:
        wire = WireClient(f"redis://:{url_password}@127.0.0.1:{settings.stack_redis_port}/0",
                          timeout=1.0, connect_timeout=1.0)
        try:
            return (await asyncio.gather(wire.call("PING"), return_exceptions=True))[0]
        finally:
            await wire.aclose()

    assert isinstance(run(scenario()), ResponseError)


def test_an_acl_user_in_the_url_is_who_it_signs_in_as(redis_user: RedisUser) -> None:
    """redis://user:password@...: AUTH with both (a password alone would be the default user's)."""
    async def scenario() -> tuple[object, object]:
        wire = WireClient(redis_user.url, timeout=1.0, connect_timeout=1.0)
        try:
            return await wire.call("ACL", "WHOAMI"), await wire.call("PING")
        finally:
            await wire.aclose()

    assert run(scenario()) == (redis_user.name.encode(), b"PONG")


def test_a_connection_closed_under_a_queued_write_fails_its_callers_at_once(
        urls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """Redis killed: uvloop may close its handle before our connection_lost runs, and a write
    queued for the end of the tick then raises in the loop's callback (the chaos run found
    'unable to perform operation on <TCPTransport closed=True>'). The callers must fail at once,
    not wait for the timeout, and the loop must log no traceback. The closed handle is stood in
    for by a transport whose write raises as uvloop's does."""

    class ClosedHandle:
        def __init__(self, real: asyncio.BaseTransport) -> None:
            self.real = real

        def is_closing(self) -> bool:
            return False  # uvloop had not marked it closing either

        def write(self, data: bytes) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

        def abort(self) -> None:
            self.real.abort()  # type: ignore[attr-defined]

    async def scenario() -> tuple[object, float, object]:
        wire = WireClient(urls[1], timeout=10.0, connect_timeout=1.0)
        try:
            assert await wire.call("PING") == b"PONG"
            assert wire._transport is not None
            wire._transport = ClosedHandle(wire._transport)  # type: ignore[assignment]
            started = time.monotonic()
            failed = (await asyncio.gather(wire.call("PING"), return_exceptions=True))[0]
            waited = time.monotonic() - started
            return failed, waited, await wire.call("PING")  # and a new connection after
        finally:
            await wire.aclose()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        failed, waited, after = run(scenario())
    # at once, not by the 10 s timeout (room for a loaded machine)
    assert isinstance(failed, RedisConnectionError) and waited < 5.0
    assert after == b"PONG"
    assert not [r for r in caplog.records if "Exception in callback" in r.getMessage()]
