"""Deterministic bulk seed shared by the benchmarks and the Locust scenarios.

10k users (bench_1 .. bench_N, all with password BENCH_PASSWORD), 200k tweets whose 1-3 tags
follow a Zipf distribution over 1,000 topics (topic1 is the hottest). The benchmarks' spec adds
cold tags (cold1 .. coldN, a few tweets each) so the cache-miss path can be loaded with a tag
not yet cached on every request. Written with COPY and set-based SQL, so seeding takes seconds;
a marker table makes it run once per database.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from service.security.passwords import HASHER

BENCH_PASSWORD = "bench-password"


@dataclass(frozen=True)
class SeedSpec:
    users: int = 10_000
    tweets: int = 200_000
    topics: int = 1_000
    zipf_s: float = 1.1
    seed: int = 42
    cold_tags: int = 0
    cold_tweets_per_tag: int = 2


# The benchmark stack's data: the default spec plus 50k cold tags for the cache-miss path.
BENCH_SPEC = SeedSpec(cold_tags=50_000)


def data_only(dsn: str) -> str:
    """The DSN for loading rows as a data-only restore does: the session's triggers off
    (asyncpg takes a DSN's unknown parameters as session settings; the role needs superuser, as
    the bench stack's owner is). A trigger a migration adds then costs its posts, not the seed."""
    return dsn + ("&" if "?" in dsn else "?") + "session_replication_role=replica"


def zipf_sampler(n: int, s: float, rng: random.Random) -> Callable[[], int]:
    weights = [1 / (k ** s) for k in range(1, n + 1)]
    cdf = list(itertools.accumulate(weights))
    total = cdf[-1]
    return lambda: bisect.bisect_left(cdf, rng.random() * total) + 1


def topic(rank: int) -> str:
    return f"topic{rank}"


MARKER = "CREATE TABLE IF NOT EXISTS seed_info (spec jsonb PRIMARY KEY, seeded_at timestamptz DEFAULT now())"


def _spec_json(spec: SeedSpec, grown: bool = False) -> str:
    import json

    fields: dict[str, object] = asdict(spec)
    if not spec.cold_tags:  # specs written before cold tags existed stay recognised
        del fields["cold_tags"], fields["cold_tweets_per_tag"]
    if grown:
        fields["grown"] = True
    return json.dumps(fields)


async def holds(dsn: str, spec: SeedSpec) -> bool:
    """Does this database hold this seed already (seed() would do nothing)?"""
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval(
            "SELECT to_regclass('seed_info') IS NOT NULL AND EXISTS (SELECT 1 FROM seed_info WHERE spec = $1::jsonb)",
            _spec_json(spec)))
    finally:
        await conn.close()


async def seed(dsn: str, spec: SeedSpec = SeedSpec(), quiet: bool = False, replace: bool = False) -> bool:
    """Seed once; returns False when this database already holds this seed. With replace (for a
    database of the benchmarks' own), data seeded with another spec is removed first."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(MARKER)
        if await conn.fetchval("SELECT 1 FROM seed_info WHERE spec = $1::jsonb", _spec_json(spec)):
            return False
        if replace and await conn.fetchval("SELECT count(*) FROM seed_info"):
            await conn.execute("""
                DROP TABLE IF EXISTS seed_mark;
                TRUNCATE seed_info, tweet_tags, tags, tweets, users RESTART IDENTITY CASCADE""")
        started = time.perf_counter()
        async with conn.transaction():
            rng = random.Random(spec.seed)
            await _write_tweets(conn, _rows(spec, await _users(conn, spec), rng))
            await conn.execute("INSERT INTO seed_info (spec) VALUES ($1::jsonb)", _spec_json(spec))
        await conn.execute("ANALYZE")
        if not quiet:
            count = spec.tweets + spec.cold_tags * spec.cold_tweets_per_tag
            print(f"seeded {spec.users} users, {count} tweets in {time.perf_counter() - started:.1f}s",
                  flush=True)
        return True
    finally:
        await conn.close()


async def _users(conn: asyncpg.Connection, spec: SeedSpec) -> list[int]:
    """The bench users (created where missing), by number: user i is bench_i."""
    await conn.execute(
        "INSERT INTO users (username, full_name, password_hash) "
        "SELECT 'bench_' || i, 'Bench User ' || i, $1 FROM generate_series(1, $2) i "
        "ON CONFLICT DO NOTHING", HASHER.hash(BENCH_PASSWORD), spec.users)
    # The ids the users really have: a sequence with gaps (a failed insert consumes a value) or
    # users from an earlier partial seed must not shift them.
    names = [f"bench_{i}" for i in range(1, spec.users + 1)]
    found = await conn.fetch("SELECT id, lower(username) AS name FROM users "
                             "WHERE lower(username) = ANY($1::text[])", names)
    ids = {r["name"]: r["id"] for r in found}
    return [ids[n] for n in names]


Row = tuple[int, int, str, list[str], datetime]


def _hot_rows(spec: SeedSpec, user_ids: list[int], rng: random.Random, first: int, count: int,
              start: datetime, step: timedelta) -> Iterator[Row]:
    """Hot tweets first .. first + count - 1 as (k, user, msg, tags, created_at), k from 0; their
    tags follow the spec's Zipf law."""
    pick = zipf_sampler(spec.topics, spec.zipf_s, rng)
    for k in range(count):
        tags = sorted({topic(pick()) for _ in range(rng.randint(1, 3))})
        msg = f"bench tweet {first + k} about " + " ".join(f"#{t}" for t in tags)
        yield k, user_ids[rng.randrange(spec.users)], msg, tags, start + step * k


def _rows(spec: SeedSpec, user_ids: list[int], rng: random.Random) -> Iterator[Row]:
    """Every tweet as (k, user, msg, tags, created_at), generated as copied: millions of rows never
    sit in memory. Cold tags get a few tweets each, after the hot ones."""
    start = datetime.now(UTC) - timedelta(days=30)
    step = timedelta(days=30) / spec.tweets
    yield from _hot_rows(spec, user_ids, rng, 0, spec.tweets, start, step)
    k = spec.tweets
    for c in range(1, spec.cold_tags + 1):
        for j in range(spec.cold_tweets_per_tag):
            yield (k, user_ids[rng.randrange(spec.users)], f"cold tweet {j} about #cold{c}",
                   [f"cold{c}"], start + step * rng.randrange(spec.tweets))
            k += 1


async def _write_tweets(conn: asyncpg.Connection, rows: Iterator[Row]) -> None:
    """Copied into a staging table, then written as the post statement writes a tweet: ids in row
    order, each tweet's JSON built by tweet_json() (sql/006) and stored with it; every tag's count
    counted anew."""
    await _link_tags(conn, await _stage_and_insert(conn, rows))
    await conn.execute("""
        DELETE FROM tags;
        INSERT INTO tags (name, shard, tweet_count)
            SELECT tag, 0, count(*) FROM tweet_tags GROUP BY tag;
    """)


async def _stage_and_insert(conn: asyncpg.Connection, rows: Iterator[Row]) -> int:
    """The rows copied into a staging table and written to tweets; the highest tweet id before."""
    before: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM tweets")
    await conn.execute("CREATE TEMP TABLE seed_rows (k int, user_id bigint, msg text, tags text[], "
                       "created_at timestamptz) ON COMMIT DROP")
    await conn.copy_records_to_table("seed_rows", records=rows,
                                     columns=["k", "user_id", "msg", "tags", "created_at"])
    # A schema from before sql/006 (a past commit measured by bench/history.py) has no stored JSON.
    stored_json = await conn.fetchval("SELECT to_regproc('tweet_json') IS NOT NULL")
    body = (", body", ", tweet_json(n.id, n.msg, n.user_id, u.username, n.created_at, n.tags)") \
        if stored_json else ("", "")
    await conn.execute(f"""
        INSERT INTO tweets (id, user_id, msg, tags, created_at{body[0]}) OVERRIDING SYSTEM VALUE
            SELECT n.id, n.user_id, n.msg, n.tags, n.created_at{body[1]}
            FROM (SELECT nextval('tweets_id_seq') AS id, r.* FROM seed_rows r ORDER BY r.k) n
            JOIN users u ON u.id = n.user_id
    """)  # noqa: S608 (two fixed fragments, no input)
    return before


async def _link_tags(conn: asyncpg.Connection, before: int) -> None:
    """tweet_tags rows for every tweet written after id `before`."""
    await conn.execute("""
        INSERT INTO tweet_tags (tag, tweet_id)
            SELECT n, t.id FROM tweets t CROSS JOIN unnest(t.tags) AS n WHERE t.id > $1 ON CONFLICT DO NOTHING
    """, before)


class SeedError(RuntimeError):
    pass


# The secondary indexes (those no constraint uses) of the tables a seed writes: dropped for a bulk
# load and built again after it.
SECONDARY_INDEXES = """
    SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
    WHERE i.indrelid = ANY ('{tweets,tweet_tags}'::regclass[])
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    ORDER BY 1"""


async def grow(dsn: str, spec: SeedSpec) -> int:
    """The database's bench seed grown to spec.tweets hot tweets by adding newer ones (make
    bench-scale: each size grows the same database instead of seeding it anew). Loaded as a bulk
    load is, in one transaction: the secondary indexes of tweets and tweet_tags dropped, the new
    rows copied and written, the indexes built again; then vacuumed and checkpointed. Benchmark
    posts since the seed are undone first (reset). A grown database is marked so: it does not hold the rows a
    seed of the same size would (the new tweets are the newest and come from their own random
    stream), and seed() replaces it. Returns the tweets added."""
    await reset(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        have = await _held_tweets(conn, spec)
        added = spec.tweets - have
        if added <= 0:
            return 0
        user_ids = await _users(conn, spec)
        times = await conn.fetchrow("SELECT coalesce(max(created_at), now()), now() FROM tweets")
        assert times is not None
        last, now = times
        step = max((now - last) / added, timedelta(microseconds=1))
        rows = _hot_rows(spec, user_ids, random.Random(f"{spec.seed}:{have}"), have, added, last + step, step)
        async with conn.transaction():
            await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            indexes = await conn.fetch(SECONDARY_INDEXES)
            for name, _ in indexes:
                await conn.execute(f"DROP INDEX {name}")  # a regclass's own text: quoted where needed
            before = await _stage_and_insert(conn, rows)
            await _link_tags(conn, before)
            await conn.execute("""
                INSERT INTO tags AS g (name, shard, tweet_count)
                    SELECT tag, 0, count(*) FROM tweet_tags WHERE tweet_id > $1 GROUP BY tag
                ON CONFLICT (name, shard) DO UPDATE SET tweet_count = g.tweet_count + excluded.tweet_count
                """, before)
            for _, definition in indexes:
                await conn.execute(definition)
            await conn.execute("DELETE FROM seed_info")
            await conn.execute("INSERT INTO seed_info (spec) VALUES ($1::jsonb)", _spec_json(spec, grown=True))
            if await conn.fetchval("SELECT to_regclass('seed_mark') IS NOT NULL"):
                await conn.execute("UPDATE seed_mark SET max_tweet = (SELECT max(id) FROM tweets)")
        await conn.execute("VACUUM ANALYZE tweets, tweet_tags, tags")
        # The gigabytes the load dirtied written out now, not by a checkpoint during the
        # measurements that follow.
        await conn.execute("CHECKPOINT")
        return added
    finally:
        await conn.close()


async def _held_tweets(conn: asyncpg.Connection, spec: SeedSpec) -> int:
    """The hot tweets of the seed this database holds, which must be spec's but for their number."""
    import json

    held = [json.loads(r[0]) for r in await conn.fetch("SELECT spec::text FROM seed_info")]
    want = json.loads(_spec_json(spec))
    same = len(held) == 1 and {k: v for k, v in held[0].items() if k not in ("tweets", "grown")} == \
        {k: v for k, v in want.items() if k != "tweets"}
    if not same or held[0]["tweets"] > spec.tweets:
        raise SeedError(f"growing to {spec} needs a database seeded with the same spec and fewer tweets; "
                        f"it holds {held or 'no seed'}")
    return int(held[0]["tweets"])


def main() -> None:
    from ops import stack
    from service.db.migrate import migrate
    from service.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=SeedSpec.users)
    parser.add_argument("--tweets", type=int, default=SeedSpec.tweets)
    args = parser.parse_args()
    settings = load_settings()
    if stack.embedded(settings):
        stack.up(settings)
    dsn = stack.urls(settings)[0]
    asyncio.run(migrate(dsn))
    done = asyncio.run(seed(dsn, SeedSpec(users=args.users, tweets=args.tweets)))
    if not done:
        print("already seeded")



async def reset(dsn: str) -> None:
    """Remove what benchmark runs added since the seed, so every run starts from the same data."""
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT to_regclass('seed_info') IS NOT NULL"):
            return
        await conn.execute("""
            CREATE TABLE IF NOT EXISTS seed_mark (k text PRIMARY KEY, max_tweet bigint, max_user bigint);
            INSERT INTO seed_mark SELECT 'seed', max(t.id), (SELECT max(id) FROM users) FROM tweets t
                ON CONFLICT DO NOTHING;
        """)
        mark = await conn.fetchrow("SELECT max_tweet, max_user FROM seed_mark")
        assert mark is not None
        max_tweet, max_user = mark
        added = await conn.fetchval("SELECT count(*) FROM tweets WHERE id > $1", max_tweet)
        if added:
            async with conn.transaction():
                await conn.execute("DELETE FROM tweet_tags WHERE tweet_id > $1", max_tweet)
                await conn.execute("DELETE FROM tweets WHERE id > $1", max_tweet)
                await conn.execute("""
                    DELETE FROM tags;
                    INSERT INTO tags (name, shard, tweet_count)
                        SELECT tag, 0, count(*) FROM tweet_tags GROUP BY tag""")
        await conn.execute("DELETE FROM users WHERE id > $1", max_user)
        await conn.execute("VACUUM ANALYZE tweets, tweet_tags, tags")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
