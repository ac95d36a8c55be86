"""The invalidation feed and the faults it must notice, against the real Redis and PostgreSQL.

Each "worker" here is the service's own per-worker wiring (service.resources), built in process
twice over with its own pool, Redis client, feed, in-process cache and timeline, so a test can
freeze, restart or cut Redis between the steps of two workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from ops import redis_server, stack
from service.codec import ORJSON
from service.resources import Resources, close_resources, open_resources
from service.security.tokens import Identity
from service.settings import Settings
from service.validate import NewTweet, search_query
from tests.conftest import free_port, unique


async def until(check: Callable[[], Any], seconds: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise AssertionError("not reached in time")


@asynccontextmanager
async def workers(settings: Settings, n: int = 2, **changes: Any) -> AsyncIterator[list[Resources]]:
    """Each as a worker of an instance of its own (its own port, so its own shared-generations
    file): only the feed connects them, as across hosts."""
    s = stack.resolve(settings).replaced(cache_prefix=unique("f"), local_cache_ttl=60.0,
                            **changes)
    opened = [await open_resources(dataclasses.replace(s, port=free_port())) for _ in range(n)]
    try:
        for w in opened:
            assert w.feed is not None
            await until(w.feed.trusted)
        yield opened
    finally:
        for w in opened:
            await close_resources(w)


async def new_user(pool: asyncpg.Pool) -> Identity:
    name = unique("feed_")
    user_id = await pool.fetchval("INSERT INTO users (username, full_name, password_hash) "
                                  "VALUES ($1, 'F', 'x') RETURNING id", name)
    return Identity(user_id, name, time.time() + 600)


async def search(w: Resources, tag: str) -> tuple[list[str], int, str]:
    body, state = await w.timeline.search(search_query({"tag": tag}))
    page = ORJSON.loads(body)
    return [t["msg"] for t in page["data"]], page["pagination"]["total"], state


def test_invalidations_arrive_at_once(settings: Settings, urls: tuple[str, str]) -> None:
    async def scenario() -> float:
        async with workers(settings) as (a, b):
            user = await new_user(a.pool)
            tag = unique("fi")
            await a.timeline.post(user, NewTweet(f"one #{tag}", [tag]))
            assert (await search(b, tag))[2] == "MISS"
            assert (await search(b, tag))[2] == "HIT"  # now kept in b's process
            await a.timeline.post(user, NewTweet(f"two #{tag}", [tag]))
            assert not a.timeline.dirty  # the post's own cache update worked: no repair needed
            assert b.local is not None
            local = b.local
            return await until(lambda: local.get((tag, 1, 10, None), time.monotonic()) is None, 5.0)

    # one Redis hop: well under a second (the feed's heartbeat), however loaded the machine
    assert asyncio.run(asyncio.wait_for(scenario(), 60)) < 1.0


def test_a_post_during_a_redis_freeze_is_seen_by_the_other_worker(settings: Settings,
                                                                   urls: tuple[str, str]) -> None:
    """Redis frozen (SIGSTOP): worker a's post is acknowledged without its cache update. Worker
    b, holding the tag's page in process and in Redis, must show it at once and after Redis
    resumes, although its pub/sub connection never broke."""
    async def scenario() -> list[tuple[float, list[str], int, str]]:
        async with workers(settings) as (a, b):
            user = await new_user(a.pool)
            tag = unique("fz")
            await a.timeline.post(user, NewTweet(f"one #{tag}", [tag]))
            await search(b, tag)
            assert (await search(b, tag))[2] == "HIT"
            seen: list[tuple[float, list[str], int, str]] = []
            pid = redis_server.pid(settings)
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                await a.timeline.post(user, NewTweet(f"two #{tag}", [tag]))  # the 201
                acknowledged = time.monotonic()
                seen.append((0.0, *await search(b, tag)))
                await asyncio.sleep(0.4)
            finally:
                os.kill(pid, signal.SIGCONT)
            while time.monotonic() - acknowledged < 2.5:
                for w in (b, a):
                    seen.append((time.monotonic() - acknowledged, *await search(w, tag)))
                await asyncio.sleep(0.01)
            return seen

    try:
        seen = asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:  # never leave the test stack's Redis stopped, whatever happened
        os.kill(redis_server.pid(settings) or 0, signal.SIGCONT)
    stale = [s for s in seen if s[2] != 2 or not s[1] or not s[1][0].startswith("two")]
    assert not stale, stale[:5]
    assert any(s[3] in ("HIT", "MISS") for s in seen[-20:]), "the cache was not used again after the freeze"


def test_redis_restarted_from_an_old_snapshot_is_not_trusted(settings: Settings,
                                                              urls: tuple[str, str]) -> None:
    """Redis comes back with data from an older snapshot (persistence on, or a replica promoted):
    the tag's entry lacks a post acknowledged before the restart. Found by the changed run id:
    every cached entry of the prefix is dropped before the cache is used again."""
    async def scenario() -> list[tuple[list[str], int, str]]:
        async with workers(settings, n=1) as (a,):
            user = await new_user(a.pool)
            tag = unique("fs")
            await a.timeline.post(user, NewTweet(f"one #{tag}", [tag]))
            await search(a, tag)
            admin = aioredis.Redis.from_url(urls[1])
            await admin.save()  # the snapshot holds the entry with "one" only
            await admin.aclose()
            await a.timeline.post(user, NewTweet(f"two #{tag}", [tag]))
            await asyncio.sleep(3)  # older than the repair window of an ordinary outage
            await asyncio.to_thread(redis_server.stop, settings)  # the workers keep running meanwhile
            await asyncio.to_thread(redis_server.start, settings)
            (settings.data_dir / "redis" / "dump.rdb").unlink(missing_ok=True)
            feed = a.feed
            assert feed is not None
            await until(lambda: feed.trusted() and not a.timeline.dirty)
            return [await search(a, tag) for _ in range(5)]

    try:
        seen = asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        (settings.data_dir / "redis" / "dump.rdb").unlink(missing_ok=True)
        stack.up(settings)
    for msgs, total, state in seen:
        assert total == 2 and msgs[0].startswith("two"), (msgs, total, state)
    assert seen[-1][2] == "HIT"


def test_a_feed_reconnected_by_the_client_drops_pages_and_repairs(
        settings: Settings, urls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """redis-py reconnects a killed pub/sub connection and subscribes again without raising:
    messages sent meanwhile are lost, so the pages kept in process go and the worker repairs."""
    async def scenario() -> tuple[bytes | None, bytes | None]:
        async with workers(settings, n=1) as (a,):
            assert a.local is not None and a.feed is not None
            key = ("tag", 1, 10, None)
            a.local.put(key, b"page", a.local.token("tag"))
            before = a.local.get(key, time.monotonic())
            admin = aioredis.Redis.from_url(urls[1])
            for client in await admin.client_list(_type="pubsub"):
                await admin.execute_command("CLIENT", "KILL", "ID", client["id"])  # type: ignore[no-untyped-call]
            await admin.aclose()
            await until(lambda: "cache repaired" in caplog.text, 5.0)
            await until(a.feed.trusted)
            return before, a.local.get(key, time.monotonic())

    caplog.set_level("INFO")
    before, after = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert before == b"page" and after is None
    assert "feed resubscribed" in caplog.text or "feed lost" in caplog.text


def test_posts_right_after_redis_comes_back_are_seen_by_the_other_worker(
        settings: Settings, urls: tuple[str, str]) -> None:
    """Redis cut off from both workers (a black-holing proxy), then back. Worker a posted during
    the cut (its breaker opened); right after the heal it keeps posting while worker b, whose
    feed recovered, reads the cache again. No read of b may miss a post acknowledged before it
    started: a post is not acknowledged without its cache update while others read the cache."""
    from tests.proxy import Proxy

    proxy = Proxy(settings.stack_redis_port)

    async def scenario() -> list[tuple[float, int, int, str]]:
        async with workers(settings, redis_url=redis_server.url_at(settings, proxy.port),
                           database_url=urls[0]) as (a, b):
            user = await new_user(a.pool)
            tag = unique("fc")
            await a.timeline.post(user, NewTweet(f"p0 #{tag}", [tag]))
            await search(b, tag)
            proxy.blackhole = True
            await asyncio.gather(*(a.timeline.post(user, NewTweet(f"c{i} #{tag}", [tag])) for i in range(4)))
            await asyncio.sleep(0.5)
            proxy.blackhole = False
            healed = time.monotonic()
            acked = 5
            seen = []
            while time.monotonic() - healed < 2.0:
                await a.timeline.post(user, NewTweet(f"p{acked} #{tag}", [tag]))
                acked += 1
                # A client's next request comes at least an HTTP round trip after the 201; the
                # invalidation message needs one socket hop. Here both workers share a loop.
                await asyncio.sleep(0.002)
                _, total, state = await search(b, tag)
                seen.append((round(time.monotonic() - healed, 3), acked, total, state))
                await asyncio.sleep(0.005)
            return seen

    try:
        seen = asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        proxy.close()
    stale = [s for s in seen if s[2] < s[1]]
    assert not stale, stale[:5]
    assert seen[-1][3] in ("HIT", "MISS"), "b never used the cache again"


def test_a_closed_feed_stops_by_itself_within_a_heartbeat(settings: Settings) -> None:
    """close() alone ends the feed's task (a cancel can be swallowed inside redis-py's timed read,
    and the worker's stop then waited out close_resources' 5 s)."""
    async def scenario() -> float:
        async with workers(settings, n=1) as (w,):
            assert w.feed is not None
            following = w.tasks[0]  # the feed's task (open_resources starts it first)
            began = time.monotonic()
            w.feed.close()  # no cancel
            done, _ = await asyncio.wait([following], timeout=5)
            assert following in done
            return time.monotonic() - began

    assert asyncio.run(scenario()) < 1.0


def test_a_malformed_dirty_message_repairs_every_tag_and_keeps_the_feed(
        settings: Settings, urls: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """`!dirty <time> <tags>` comes from TagCache.announce_dirty; one another Redis client made
    without a readable time (none, not ISO, no time zone) counts from the earliest time (every
    cached tag repaired) instead of breaking the feed, which stays subscribed."""
    messages = ["!dirty", "!dirty yesterday a", "!dirty 2026-01-01T00:00:00 a",
                "!dirty 2026-01-01T00:00:00+00:00 a"]

    async def scenario() -> list[datetime]:
        async with workers(settings, n=1) as (a,):
            marked: list[datetime] = []
            real = a.timeline.mark_dirty

            def mark(since: datetime) -> None:
                marked.append(since)
                real(since)

            a.timeline.mark_dirty = mark  # type: ignore[method-assign]
            admin = aioredis.Redis.from_url(urls[1])
            for message in messages:
                await admin.publish(a.timeline._cache.channel, message)  # type: ignore[union-attr]
            await admin.aclose()
            await until(lambda: len(marked) == len(messages))
            assert a.feed is not None and a.feed.trusted()
            return marked

    marked = asyncio.run(asyncio.wait_for(scenario(), 30))
    earliest = datetime.min.replace(tzinfo=UTC)
    assert marked == [earliest] * 3 + [datetime(2026, 1, 1, tzinfo=UTC)]
    assert not [r for r in caplog.records if "invalidation feed" in r.getMessage()]
