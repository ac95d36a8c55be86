"""PostgreSQL too slow or a connection left broken: a 503 with Retry-After, never a 500, and no
broken connection handed to the next request."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from service.db.pool import PooledConnection, PoolStats, create_pool, unavailable
from service.settings import Settings
from tests.conftest import post_while_locked, register_and_login, start_server, unique


def test_a_statement_held_past_the_statement_timeout_is_a_503(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(urls, tmp_path_factory, DB_STATEMENT_TIMEOUT="0.5")

    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
            tag = unique("st")
            r, landed = asyncio.run(post_while_locked(urls[0], srv.url, auth, tag))
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"] == "1" and r.json()["code"] == "serviceUnavailable"
            assert landed == 0  # refused means not written
            ok = c.post("/api/v1/tweet", json={"msg": f"#{tag} later"}, headers=auth)
            assert ok.status_code == 201  # and the pool recovered by itself
    finally:
        srv.stop()


def test_a_connection_left_mid_operation_is_closed_not_reused(settings: Settings,
                                                              urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[bool, bool, int]:
        pool = await create_pool(settings.replaced(db_pool_min=1, db_pool_max=1), urls[0])
        try:
            with pytest.raises(asyncpg.exceptions.InternalClientError):
                async with PooledConnection(pool, 1.0, None, PoolStats()) as conn:
                    broken = conn._con  # type: ignore[attr-defined]  # the raw connection behind the proxy
                    raise asyncpg.exceptions.InternalClientError(
                        "cannot switch to state 12; another operation (2) is in progress")
            async with PooledConnection(pool, 1.0, None, PoolStats()) as conn:
                fresh = conn._con  # type: ignore[attr-defined]
                value = await conn.fetchval("SELECT 1")
            return broken.is_closed(), fresh is not broken, value
        finally:
            await pool.close()

    closed, replaced, value = asyncio.run(scenario())
    assert closed and replaced and value == 1
    assert unavailable(asyncpg.exceptions.InternalClientError("x"))  # answered 503
