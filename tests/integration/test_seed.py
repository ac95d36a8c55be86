"""The shared seed (make locust, make bench) on databases that already have a history."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import asyncpg
import pytest

from bench.seed import SeedError, SeedSpec, data_only, grow, reset, seed
from bench.sides import SideError, run
from service.db import tweets
from service.db.migrate import migrate
from service.settings import ROOT

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


COSTLY_TRIGGER = """
    CREATE FUNCTION costly() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
    CREATE TRIGGER costly BEFORE INSERT ON tweets FOR EACH ROW EXECUTE FUNCTION costly()"""


def test_a_costly_trigger_a_migration_adds_costs_its_posts_and_not_the_seed(scratch_dsn: str) -> None:
    """A migration's trigger with 10 ms of work per tweet: seeding 300 tweets as a data-only load
    (make bench's and make bench-check's seed) does not fire it, while a post still pays it (had
    it fired, the seed would take 3 s)."""
    async def costly_then_post() -> tuple[float, float]:
        conn = await asyncpg.connect(scratch_dsn)
        try:
            await conn.execute(COSTLY_TRIGGER)
            started = time.perf_counter()
            assert await seed(data_only(scratch_dsn), SMALL, quiet=True) is True
            seeding = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute("INSERT INTO tweets (user_id, msg) SELECT min(id), 'a post' FROM users")
            return seeding, time.perf_counter() - started
        finally:
            await conn.close()

    seeding, post = asyncio.run(costly_then_post())
    assert asyncio.run(_counts(scratch_dsn)) == (50, 301, 301)
    assert seeding < 1.5, f"seeding fired the trigger: {seeding:.2f} s"
    assert post >= 0.01  # the trigger is there, and fires for the service's sessions


def test_a_step_of_the_checks_preparation_over_its_limit_fails_by_name() -> None:
    slow = [sys.executable, "-c", "import time; time.sleep(5)"]
    with pytest.raises(SideError, match=r"the baseline's migrations in .* did not finish within 0\.5 s"):
        run(slow, ROOT, "the baseline's migrations", limit=0.5)


async def _shape(dsn: str) -> dict[str, object]:
    """What a grown database must keep true: every tweet's tags in tweet_tags, every tag's count
    right, the same indexes, and the seed's marker."""
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "tweets": await conn.fetchval("SELECT count(*) FROM tweets"),
            "links": await conn.fetchval("SELECT count(*) FROM tweet_tags"),
            "tags_per_tweet": await conn.fetchval("SELECT sum(cardinality(tags)) FROM tweets"),
            "wrong_counts": await conn.fetchval("""
                SELECT count(*) FROM (SELECT name, sum(tweet_count) AS n FROM tags GROUP BY name) g
                FULL JOIN (SELECT tag, count(*) AS n FROM tweet_tags GROUP BY tag) l ON l.tag = g.name
                WHERE g.n IS DISTINCT FROM l.n"""),
            "indexes": [tuple(r) for r in await conn.fetch(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = ANY ('{tweets,tweet_tags,tags}'::regclass[]) ORDER BY 1")],
            "bodies_wrong": await conn.fetchval(
                "SELECT count(*) FROM tweets t JOIN users u ON u.id = t.user_id "
                "WHERE t.body <> tweet_json(t.id, t.msg, t.user_id, u.username, t.created_at, t.tags)"),
            "ids_in_time_order": await conn.fetchval(
                "SELECT bool_and(ordered) FROM (SELECT created_at >= lag(created_at, 1, created_at) "
                "OVER (ORDER BY id) AS ordered FROM tweets WHERE msg LIKE 'bench tweet %') o"),
            "marker": await conn.fetchval("SELECT spec->>'grown' FROM seed_info"),
        }
    finally:
        await conn.close()


def test_growing_a_seed_adds_newer_tweets_as_a_bulk_load_keeping_every_index(scratch_dsn: str) -> None:
    cold = replace(SMALL, cold_tags=5)
    assert asyncio.run(seed(data_only(scratch_dsn), cold, quiet=True)) is True
    asyncio.run(reset(scratch_dsn))  # as make bench does: the seed's mark, then a benchmark's post

    async def post() -> None:
        conn = await asyncpg.connect(scratch_dsn)
        try:
            user = await conn.fetchrow("SELECT id, username FROM users ORDER BY id LIMIT 1")
            assert user is not None
            await tweets.post(conn, user["id"], user["username"], "a benchmark post #topic1", ["topic1"])
        finally:
            await conn.close()

    asyncio.run(post())
    before = asyncio.run(_shape(scratch_dsn))
    assert before["tweets"] == 311

    assert asyncio.run(grow(data_only(scratch_dsn), replace(cold, tweets=1_000))) == 700
    after = asyncio.run(_shape(scratch_dsn))
    assert after["tweets"] == 1_010  # the benchmark's post undone, 700 newer tweets added
    assert after["links"] == after["tags_per_tweet"]
    assert after["wrong_counts"] == 0 and after["bodies_wrong"] == 0 and after["ids_in_time_order"] is True
    assert after["indexes"] == before["indexes"]
    assert after["marker"] == "true"

    assert asyncio.run(grow(data_only(scratch_dsn), replace(cold, tweets=1_000))) == 0  # already there
    assert asyncio.run(grow(data_only(scratch_dsn), replace(cold, tweets=1_200))) == 200  # a grown one grows
    with pytest.raises(SeedError, match="same spec and fewer tweets"):
        asyncio.run(grow(data_only(scratch_dsn), replace(cold, tweets=1_200, topics=21)))
    with pytest.raises(SeedError, match="fewer tweets"):
        asyncio.run(grow(data_only(scratch_dsn), replace(cold, tweets=500)))
    # A seed of the grown size is not what growing made: seed() replaces it.
    again = replace(cold, tweets=1_200)
    assert asyncio.run(seed(data_only(scratch_dsn), again, quiet=True, replace=True)) is True
    assert asyncio.run(_shape(scratch_dsn))["marker"] is None
