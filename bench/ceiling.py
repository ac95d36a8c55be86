"""PostgreSQL's own ceiling for each database-bound path, measured in the same run as the service.

For each path, the statements the service runs for it, through the service's own functions
(service.db.tweets) on asyncpg with prepared statements as the service uses them, from as many
concurrent connections as the load generator opens (and fewer: the best counts), with no HTTP,
no Redis and no framework.
Run pinned to the load generator's CPU, like wrk. service / ceiling then says how close the
service comes to what the database can do on this machine; the client's own CPU is reported, so
a ceiling that is the client's limit rather than PostgreSQL's shows itself.

    python -m bench.ceiling --dsn DSN --paths bypass,miss,post --seconds 4 --connections 8,64
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.harness import HOT_TAG
from bench.seed import BENCH_SPEC
from service.db import Conn, tweets
from service.settings import Tuning

DEEP_OFFSET = 4900  # where keyset deep pages start: far beyond the cached window of 1,000
Statement = Callable[[Conn, int], Awaitable[object]]


def statements(cache_size: int, cold_tags: int, deep_before_id: int, user_id: int,
               username: str) -> dict[str, Statement]:
    """Per path, what one request of that path asks of PostgreSQL (i: the request's number)."""
    topics = random.Random(7)

    def topic() -> str:  # the spread bench/wrk/post.lua posts with
        return f"topic{int(math.exp(topics.random() * math.log(1000)))}"

    return {
        # the hot tag's first page, cache off
        "bypass": lambda c, i: tweets.search_page(c, HOT_TAG, 10, 0, None),
        # a cold tag's fill: its newest cache_size tweets and its total
        "miss": lambda c, i: tweets.search(c, f"cold{i % cold_tags + 1}", cache_size, 0, None),
        "post": lambda c, i: tweets.post(c, user_id, username, f"ceiling post {i} #{topic()}",
                                         sorted({topic(), topic()} if i % 2 else {topic()})),
        # the pages bench/wrk/deep.lua asks for: beyond the cached window, a different one each time
        "deep_offset": lambda c, i: tweets.search_page(c, HOT_TAG, 50 + i % 51,
                                                       (20 + i // 51 % 80) * (50 + i % 51), None),
        "deep_keyset": lambda c, i: tweets.search_page(c, HOT_TAG, 100, 0, deep_before_id - i % 100000),
    }


async def measure(dsn: str, statement: Statement, seconds: float, connections: int,
                  warmup: float = 1.0) -> dict[str, Any]:
    # Planned as the service's own pool has them planned (USE_GENERIC_PLANS, service/db/pool.py).
    generic = {"plan_cache_mode": "force_generic_plan"} if Tuning().use_generic_plans else {}
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections, server_settings=generic)
    counter = itertools.count()
    latencies: list[float] = []
    recording = False

    async def worker(deadline: float) -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await statement(conn, next(counter))
                if recording:
                    latencies.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(worker(time.perf_counter() + warmup) for _ in range(connections)))
        recording = True
        cpu_before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(connections)))
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await pool.close()
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    return {"rps": len(latencies) / elapsed, "requests": len(latencies), "p50_ms": pct(50),
            "p99_ms": pct(99), "client_cpu_pct": 100 * cpu / elapsed, "connections": connections,
            "seconds": seconds, "tool": "bench/ceiling.py (asyncpg, prepared, the service's db functions)"}


async def deep_before_id(dsn: str) -> int:
    """The hot tag's tweet id DEEP_OFFSET from its newest."""
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchval("SELECT tweet_id FROM tweet_tags WHERE tag = $1 "
                                    "ORDER BY tweet_id DESC OFFSET $2 LIMIT 1", HOT_TAG, DEEP_OFFSET)
    finally:
        await conn.close()
    return int(found or tweets.NO_LIMIT)


async def run(dsn: str, paths: list[str], seconds: float, connections: list[int], cache_size: int,
              cold_tags: int) -> dict[str, Any]:
    """Per path, the best of the given concurrencies (each one's figures kept under "by_connections"):
    at the service's own 64, PostgreSQL spends part of two cores switching between backends."""
    conn = await asyncpg.connect(dsn)
    try:
        user = await conn.fetchrow("SELECT id, username FROM users ORDER BY id LIMIT 1")
        assert user is not None, "the bench database has no users: seed it first"
        user_id, username = user
    finally:
        await conn.close()
    chosen = statements(cache_size, cold_tags, await deep_before_id(dsn), user_id, username)
    out = {}
    for path in paths:
        runs = [await measure(dsn, chosen[path], seconds, n) for n in connections]
        best = max(runs, key=lambda r: r["rps"])
        out[path] = {**best, "by_connections": {str(r["connections"]): round(r["rps"]) for r in runs}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--paths", default="bypass,miss,post,deep_offset,deep_keyset")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", default="8,64", help="concurrencies to try, comma-separated")
    parser.add_argument("--cache-size", type=int, default=1000)
    parser.add_argument("--cold-tags", type=int, default=BENCH_SPEC.cold_tags)
    args = parser.parse_args()
    results = asyncio.run(run(args.dsn, args.paths.split(","), args.seconds,
                              [int(n) for n in args.connections.split(",")],
                              args.cache_size, args.cold_tags))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
