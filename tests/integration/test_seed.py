"""The shared seed (make locust, make bench) on databases that already have a history."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from bench.seed import SeedSpec, seed
from service.db.migrate import migrate

SMALL = SeedSpec(users=50, tweets=300, topics=20)


async def _scratch_database(admin_dsn: str) -> str:
    name = f"seed_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


async def _drop_database(admin_dsn: str, dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def scratch_dsn(urls: tuple[str, str]) -> Iterator[str]:
    admin = urls[0]
    dsn = asyncio.run(_scratch_database(admin))
    asyncio.run(migrate(dsn))
    yield dsn
    asyncio.run(_drop_database(admin, dsn))


async def _history(dsn: str) -> None:
    """Real users, and a gap in the id sequence left by a failed (duplicate) registration."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO users (username, full_name, password_hash) VALUES "
                           "('alice', 'Alice', 'x'), ('bob', 'Bob', 'x')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO users (username, full_name, password_hash) "
                               "VALUES ('ALICE', 'A', 'x')")
    finally:
        await conn.close()


async def _counts(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        users = await conn.fetchval("SELECT count(*) FROM users WHERE username LIKE 'bench\\_%'")
        tweets = await conn.fetchval("SELECT count(*) FROM tweets")
        by_bench = await conn.fetchval("SELECT count(*) FROM tweets t JOIN users u ON u.id = t.user_id "
                                       "WHERE u.username LIKE 'bench\\_%'")
        return users, tweets, by_bench
    finally:
        await conn.close()


def test_seed_works_after_a_gap_in_the_user_ids_and_only_once(scratch_dsn: str) -> None:
    asyncio.run(_history(scratch_dsn))
    assert asyncio.run(seed(scratch_dsn, SMALL, quiet=True)) is True
    assert asyncio.run(_counts(scratch_dsn)) == (50, 300, 300)  # every tweet by a bench user
    assert asyncio.run(seed(scratch_dsn, SMALL, quiet=True)) is False  # idempotent
    assert asyncio.run(_counts(scratch_dsn)) == (50, 300, 300)


def test_seed_with_cold_tags_and_replace(scratch_dsn: str) -> None:
    assert asyncio.run(seed(scratch_dsn, SMALL, quiet=True)) is True
    cold = SeedSpec(users=50, tweets=300, topics=20, cold_tags=10, cold_tweets_per_tag=3)
    assert asyncio.run(seed(scratch_dsn, cold, quiet=True, replace=True)) is True
    assert asyncio.run(_counts(scratch_dsn)) == (50, 330, 330)  # the first seed was replaced

    async def cold_tag_counts() -> list[int]:
        conn = await asyncpg.connect(scratch_dsn)
        try:
            return [r[0] for r in await conn.fetch(
                "SELECT sum(tweet_count) FROM tags WHERE name LIKE 'cold%' GROUP BY name")]
        finally:
            await conn.close()

    assert sorted(asyncio.run(cold_tag_counts())) == [3] * 10
