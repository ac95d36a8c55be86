"""The lean pool path (USE_LEAN_POOL, service/db/pool.py): an idle live connection taken and given
back as asyncpg 0.32's own acquire and release would, and asyncpg's path in every other case,
against a real pool on the test PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.db.pool import (
    Deadlines,
    IdleSweep,
    PooledConnection,
    PoolStats,
    create_pool,
    give_back,
    take_idle,
    unavailable,
)
from service.db.tweets import NO_LIMIT, SEARCH_PAGE
from service.resources import close_resources, open_resources
from service.settings import Settings
from tests.proxy import Proxy


def run(settings: Settings, dsn: str, scenario: Callable[[asyncpg.Pool], Awaitable[Any]],
        size: int = 2, min_size: int = 2) -> Any:
    async def main() -> Any:
        pool = await create_pool(settings.replaced(db_pool_min=min_size, db_pool_max=size), dsn)
        try:
            return await scenario(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def idle(pool: asyncpg.Pool) -> int:
    return int(pool.get_idle_size())


def queued(pool: asyncpg.Pool) -> int:
    return int(pool._queue.qsize())  # type: ignore[attr-defined]


def test_an_idle_connection_is_lent_and_given_back_as_asyncpg_does(settings: Settings,
                                                                   urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        assert idle(pool) == 2 and queued(pool) == 2
        conn = take_idle(pool)
        assert conn is not None and queued(pool) == 1
        raw = conn._con  # type: ignore[attr-defined]
        assert await conn.fetchval("SELECT 41 + 1") == 42
        assert give_back(conn)
        assert queued(pool) == 2 and idle(pool) == 2
        with pytest.raises(asyncpg.InterfaceError, match="released back to the pool"):
            await conn.fetchval("SELECT 1")  # the proxy is detached, as after pool.release
        again = await pool.acquire()  # asyncpg's own acquire takes the same live connection
        assert again._con is raw  # type: ignore[attr-defined]  # LIFO: the one just given back
        await pool.release(again)

    run(settings, urls[0], scenario)


def test_none_idle_or_none_open_leaves_it_to_asyncpg(settings: Settings, urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        assert take_idle(pool) is None and queued(pool) == 1  # not yet connected: asyncpg opens it
        async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True) as conn:
            assert await conn.fetchval("SELECT 1") == 1
            assert take_idle(pool) is None  # the only connection is lent
        again = take_idle(pool)  # opened by asyncpg, now idle: lean from here
        assert again is not None and give_back(again)

    run(settings, urls[0], scenario, size=1, min_size=0)


def test_expired_connections_are_renewed_by_asyncpg(settings: Settings, urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        before = await pool.acquire()
        old = before._con  # type: ignore[attr-defined]
        await pool.release(before)
        await pool.expire_connections()
        assert take_idle(pool) is None and queued(pool) == 1
        async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True) as conn:
            assert conn._con is not old and await conn.fetchval("SELECT 1") == 1  # type: ignore[attr-defined]
        assert old.is_closed()

    run(settings, urls[0], scenario, size=1, min_size=1)


def test_a_connection_with_an_open_transaction_goes_back_through_asyncpg(settings: Settings,
                                                                        urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        conn = take_idle(pool)
        assert conn is not None
        await conn.execute("BEGIN")
        assert not give_back(conn) and queued(pool) == 0  # a rollback needs a round trip
        await pool.release(conn)  # asyncpg rolls it back
        again = take_idle(pool)
        assert again is not None and not again.is_in_transaction()
        assert give_back(again)

    run(settings, urls[0], scenario, size=1, min_size=1)


def test_a_connection_closed_under_it_is_not_queued_twice(settings: Settings, urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True) as conn:
            conn.terminate()  # asyncpg takes the holder back when the connection closes
        assert queued(pool) == 1
        async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True) as conn:
            assert await conn.fetchval("SELECT 1") == 1  # a new connection, opened by asyncpg
        assert queued(pool) == 1

    run(settings, urls[0], scenario, size=1, min_size=1)


def test_a_connection_given_back_reaches_the_request_waiting_for_it(settings: Settings,
                                                                    urls: tuple[str, str]) -> None:
    """Given back the lean way, a connection wakes the request waiting in asyncpg's queue, which
    gets it before a request arriving after the release (while anyone waits, every request takes
    asyncpg's path, in its order)."""

    async def scenario(pool: asyncpg.Pool) -> list[str]:
        stats, order = PoolStats(), []
        holder = PooledConnection(pool, 5.0, None, stats, lean=True)
        await holder.__aenter__()

        async def use(name: str) -> None:
            async with PooledConnection(pool, 5.0, None, stats, lean=True) as conn:
                order.append(name)
                await conn.fetchval("SELECT 1")

        first = asyncio.create_task(use("waited"))
        await asyncio.sleep(0.05)
        assert stats.waiting == 1
        await holder.__aexit__(None, None, None)
        later = asyncio.create_task(use("later"))  # arrives before the waiter has run again
        await asyncio.gather(first, later)
        return order

    assert run(settings, urls[0], scenario, size=1, min_size=1) == ["waited", "later"]


def test_a_closing_pool_is_left_to_asyncpg(settings: Settings, urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        await pool.close()
        assert take_idle(pool) is None
        with pytest.raises(asyncpg.InterfaceError, match="pool is closed"):
            async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True):
                pass

    run(settings, urls[0], scenario, size=1, min_size=1)


def test_a_statement_the_server_never_answers_is_cut_by_the_deadline_watch(settings: Settings,
                                                                           urls: tuple[str, str]) -> None:
    """USE_DEADLINE_WATCH: statements carry no timer; a connection lent past DB_COMMAND_TIMEOUT is
    closed by the worker's watch, its statement failing as on a lost connection (503), and the
    pool serves again once the server answers."""
    parts = urlsplit(urls[0])
    proxy = Proxy(parts.port or 5432)
    credentials = parts.netloc.rpartition("@")[0]
    dsn = urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}"))
    quick = settings.replaced(db_command_timeout=0.6, db_statement_timeout=0.5,
                                use_deadline_watch=True)

    async def scenario(pool: asyncpg.Pool) -> tuple[float, BaseException | None, int]:
        watch = Deadlines(quick.db.db_command_timeout)
        job = asyncio.create_task(watch.run())
        try:
            async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True, watch=watch) as conn:
                assert await conn.fetchval("SELECT 1") == 1
            proxy.blackhole = True  # the server never sees the next statement
            began, error = time.monotonic(), None
            try:
                async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True, watch=watch) as conn:
                    await conn.fetchval("SELECT 2")
            except Exception as exc:
                error = exc
            waited = time.monotonic() - began
            proxy.blackhole = False
            async with PooledConnection(pool, 1.0, None, PoolStats(), lean=True, watch=watch) as conn:
                return waited, error, await conn.fetchval("SELECT 3")
        finally:
            job.cancel()

    try:
        waited, error, later = asyncio.run(asyncio.wait_for(scenario_on(quick, dsn, scenario), 20))
    finally:
        proxy.close()
    assert error is not None and unavailable(error), repr(error)
    assert 0.6 <= waited < 0.6 + 0.6, waited  # cut after the deadline, within a period of the watch
    assert later == 3


async def scenario_on(settings: Settings, dsn: str,
                      scenario: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    pool = await create_pool(settings.replaced(db_pool_min=1, db_pool_max=2), dsn)
    try:
        return await scenario(pool)
    finally:
        pool.terminate()


def test_connections_idle_past_the_lifetime_are_closed_by_the_sweep(settings: Settings,
                                                                    urls: tuple[str, str]) -> None:
    """With the lean pool, asyncpg arms no idle timer per release; the sweep closes what ran no
    statement for DB_IDLE_LIFETIME, keeps a connection used meanwhile, and keeps the minimum."""
    async def scenario(pool: asyncpg.Pool) -> tuple[int, int, int, int]:
        held = [await pool.acquire() for _ in range(3)]
        for conn in held:
            await conn.fetchval("SELECT 1")
            await pool.release(conn)
        assert all(h._inactive_callback is None for h in pool._holders)  # type: ignore[attr-defined]
        sweep = IdleSweep([pool], 0.4)
        first = sweep.sweep()  # the first look only notes them
        await asyncio.sleep(0.5)
        used = take_idle(pool)
        assert used is not None and await used.fetchval("SELECT 2") == 2
        assert give_back(used)
        closed = sweep.sweep()
        await asyncio.sleep(0.05)
        return first, closed, int(pool.get_size()), sweep.sweep()

    lean = settings.replaced(use_lean_pool=True, db_idle_lifetime=0.4)
    first, closed, size, later = run(lean, urls[0], scenario, size=3, min_size=1)
    assert (first, closed, size, later) == (0, 2, 1, 0)


def test_a_worker_sweeps_its_idle_connections(resolved: Settings) -> None:
    async def scenario() -> tuple[int, int]:
        w = await open_resources(resolved.replaced(db_idle_lifetime=0.3, db_pool_min=1))
        try:
            held = [await w.pool.acquire() for _ in range(3)]
            for conn in held:
                await w.pool.release(conn)
            busy = w.pool.get_size()
            deadline = time.monotonic() + 5
            while w.pool.get_size() > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return busy, w.pool.get_size()
        finally:
            await close_resources(w)

    assert asyncio.run(scenario()) == (3, 1)


def test_prepared_statements_run_their_generic_plan_unless_switched_off(settings: Settings,
                                                                         urls: tuple[str, str]) -> None:
    """USE_GENERIC_PLANS: a search prepared by the pool is planned once (its plan's parameters stay
    $n), where PostgreSQL's default plans it anew for the values of every execution."""
    async def plans(pool: asyncpg.Pool) -> tuple[str, str]:
        async with pool.acquire() as conn:
            for _ in range(8):  # past the 5 custom plans PostgreSQL's default starts with
                await conn.fetch(SEARCH_PAGE[True], "anytag", 10, 0, NO_LIMIT)
            mode = await conn.fetchval("SHOW plan_cache_mode")
            await conn.execute("PREPARE probe (text, bigint, bigint, bigint) AS " + SEARCH_PAGE[True])
            shown = await conn.fetch("EXPLAIN EXECUTE probe ('anytag', 10, 0, 9)")
            await conn.execute("DEALLOCATE probe")
            return mode, "\n".join(r[0] for r in shown)

    mode, plan = run(settings, urls[0], plans)
    assert mode == "force_generic_plan" and "$1" in plan and "'anytag'" not in plan
    mode, plan = run(settings.replaced(use_generic_plans=False), urls[0], plans)
    assert mode == "auto" and "'anytag'" in plan  # a custom plan, for these values
