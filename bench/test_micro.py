"""Microbenchmarks, grouped so each comparison reads as one table.

    .venv/bin/python -m pytest bench/test_micro.py --benchmark-json=bench/results/micro.json
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

from bench.conftest import OPS
from service.cache.client import Breaker
from service.cache.guard import Guard
from service.cache.local import LocalCache
from service.cache.tags import TagCache
from service.codec import ORJSON
from service.db import tweets
from service.db.database import Database
from service.db.pool import create_pool
from service.security.tokens import Identity
from service.settings import Settings
from service.tagrules import normalise_memoised, tweet_tags
from service.timeline import Timeline
from service.validate import NewTweet, search_query_string


def reference_work() -> int:
    """Fixed pure-Python work: the yardstick the CI check divides other timings by."""
    return sum(i * i for i in range(2000))


def test_reference(benchmark: Any) -> None:
    benchmark.group = "reference"
    benchmark(reference_work)


# -- tags ----------------------------------------------------------------------------------

def test_normalise_tag(benchmark: Any) -> None:
    benchmark.group = "tags"
    raw = normalise_memoised.__wrapped__  # the real work, not the memoised lookup
    benchmark(lambda: [raw(t) for t in ("#Python", "\uff33\uff21\uff2e\uff29\uff23", "uvloop_2", "Straße")])


def test_tweet_tags_from_text(benchmark: Any) -> None:
    benchmark.group = "tags"
    normalise_memoised.cache_clear()
    benchmark(lambda: tweet_tags(["Python", "sanic"], "fast #Python on #uvloop with #asyncpg and #Redis"))


# -- the in-process cache ------------------------------------------------------------------

def test_local_put_when_full(benchmark: Any) -> None:
    """A miss's page put into a full in-process cache (the default bound, some 40k small pages):
    each put makes room for itself, oldest pages out."""
    benchmark.group = "in-process cache"
    cache = LocalCache(60.0, Settings().cache.local_cache_bytes)
    cache.active = True
    body = b"x" * 500
    names = (f"cold{i}" for i in itertools.count())

    def put() -> None:
        tag = next(names)
        cache.put((tag, 1, 20, None), body, cache.token(tag))
    while cache.bytes < cache.max_bytes - 2000:
        put()
    benchmark(put)
    assert cache.bytes <= cache.max_bytes


# -- serialization -------------------------------------------------------------------------

def page(n: int) -> dict[str, Any]:
    tweet = {"id": 123456, "msg": "x" * 140 + " #python #sanic", "user_id": 42, "username": "bench_42",
             "created_at": "2026-11-28T00:06:37.712722Z", "tags": ["python", "sanic"]}
    return {"data": [dict(tweet, id=i) for i in range(n)], "code": "success",
            "pagination": {"total": 5000, "page": 1, "page_size": n}}


@pytest.mark.parametrize("n", [10, 100])
@pytest.mark.parametrize("lib", ["orjson", "stdlib json"])
def test_serialize_page(benchmark: Any, n: int, lib: str) -> None:
    benchmark.group = f"serialize a {n}-tweet page"
    value = page(n)
    if lib == "orjson":
        benchmark(orjson.dumps, value)
    else:
        benchmark(lambda: json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


# -- the search path in process: cache hit vs miss, same data --------------------------------

@pytest.fixture(scope="module")
def parts(urls: tuple[str, str], loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, Any]]:
    settings = Settings.from_env({})

    async def make() -> dict[str, Any]:
        pool = await create_pool(settings, urls[0])
        client = aredis.Redis.from_url(urls[1])
        cache = TagCache(client, "micro", 600, 0.0, 1000, True)
        return {"pool": pool, "redis": client, "cache": cache,
                "hit": Timeline(Database(pool, 2.0), ORJSON, cache=cache, guard=Guard(Breaker(3, 1))),
                "miss": Timeline(Database(pool, 2.0), ORJSON, cache=None, guard=Guard(Breaker(3, 1)))}

    made = loop.run_until_complete(make())
    yield made
    loop.run_until_complete(made["pool"].close())


@pytest.mark.parametrize("path", ["hit", "miss"])
def test_search_in_process(run_async: Callable[..., None], parts: dict[str, Any], loop: Any,
                           path: str, benchmark: Any) -> None:
    benchmark.group = "search topic1 page 1 in process (Redis hit vs PostgreSQL)"
    q = search_query_string("tag=topic1&page=1&page_size=10")
    loop.run_until_complete(parts["hit"].search(q))  # fill the Redis entry
    timeline = parts[path]
    run_async(lambda: timeline.search(q))


# -- cache fill: one round trip vs one command at a time --------------------------------------

@pytest.fixture(scope="module")
def entry(parts: dict[str, Any], loop: asyncio.AbstractEventLoop) -> list[tuple[int, bytes]]:
    async def rows() -> list[tuple[int, bytes]]:
        async with parts["pool"].acquire() as conn:
            return (await tweets.search(conn, "topic1", 100, 0, None))[1]

    return loop.run_until_complete(rows())


@pytest.mark.parametrize("mode", ["script (one call)", "pipeline (one round trip)", "one command at a time"])
def test_cache_fill(run_async: Callable[..., None], parts: dict[str, Any], entry: list[tuple[int, bytes]],
                    mode: str, benchmark: Any) -> None:
    benchmark.group = "fill a 100-tweet cache entry"
    r: aredis.Redis = parts["redis"]
    cache: TagCache = parts["cache"]
    key = "micro:fill"

    async def script() -> None:
        await cache.fill("fillbench", b"", 100, entry)

    async def pipelined() -> None:
        pipe = r.pipeline(transaction=False)
        pipe.delete(key)
        for tweet_id, body in entry:
            pipe.zadd(key, {body: tweet_id})
        pipe.pexpire(key, 60_000)
        await pipe.execute()

    async def sequential() -> None:
        await r.delete(key)
        for tweet_id, body in entry:
            await r.zadd(key, {body: tweet_id})
        await r.pexpire(key, 60_000)

    op = {"script (one call)": script, "pipeline (one round trip)": pipelined,
          "one command at a time": sequential}[mode]
    run_async(op, rounds=5 if mode == "one command at a time" else 20)


# -- hiredis vs the pure-Python parser ---------------------------------------------------------

@pytest.mark.parametrize("parser", ["hiredis", "pure Python"])
def test_read_100_tweet_entry(run_async: Callable[..., None], urls: tuple[str, str], parts: dict[str, Any],
                              entry: list[tuple[int, bytes]], loop: Any, parser: str, benchmark: Any) -> None:
    benchmark.group = "read a 100-tweet entry (ZREVRANGE 0 99)"
    loop.run_until_complete(parts["cache"].fill("parsebench", b"", 100, entry))
    cls = _AsyncHiredisParser if parser == "hiredis" else _AsyncRESP2Parser
    client = aredis.Redis.from_url(urls[1], parser_class=cls, protocol=2)
    key = parts["cache"].entry_key("parsebench")
    run_async(lambda: client.zrevrange(key, 0, 99))


# -- asyncpg: pooled vs a new connection per query ----------------------------------------------

@pytest.mark.parametrize("mode", ["pooled", "new connection"])
def test_asyncpg(run_async: Callable[..., None], urls: tuple[str, str], parts: dict[str, Any],
                 mode: str, benchmark: Any) -> None:
    benchmark.group = "one query: pooled vs new connection"
    pool = parts["pool"]

    async def pooled() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def fresh() -> None:
        conn = await asyncpg.connect(urls[0])
        await conn.fetchval("SELECT 1")
        await conn.close()

    run_async(pooled if mode == "pooled" else fresh, rounds=30 if mode == "pooled" else 3)


# -- posting with 1 vs 5 tags -------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 5])
def test_post(run_async: Callable[..., None], parts: dict[str, Any], count: int, benchmark: Any) -> None:
    benchmark.group = "post a tweet (PostgreSQL + cache update)"
    timeline: Timeline = parts["hit"]
    user = Identity(1, "bench_1", 2e9)
    tags = [f"topic{i}" for i in range(1, count + 1)]
    new = NewTweet("micro benchmark " + " ".join(f"#{t}" for t in tags), tags)
    run_async(lambda: timeline.post(user, new), rounds=10)


assert OPS > 0
