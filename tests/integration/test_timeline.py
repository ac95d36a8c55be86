"""Timeline's own logic, driven directly against the real PostgreSQL and Redis (no HTTP): the
shielded post, the repair after an outage, and serving from a fill."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from service.codec import ORJSON
from service.db import tweets
from service.resources import close_resources, open_resources
from service.security.tokens import Identity
from service.settings import Settings
from service.validate import NewTweet, SearchQuery, search_query
from tests.conftest import unique


async def user(pool) -> Identity:  # type: ignore[no-untyped-def]
    name = unique("tl_")
    user_id = await pool.fetchval("INSERT INTO users (username, full_name, password_hash) "
                                  "VALUES ($1, 'T', 'x') RETURNING id", name)
    return Identity(user_id, name, time.time() + 600)


async def one_cached_tweet(w: Any) -> tuple[Identity, str, SearchQuery]:
    """Once the feed is live: a new user's tweet to a new tag, whose entry the search then fills."""
    assert w.feed is not None and w.redis is not None
    while not w.feed.trusted():
        await asyncio.sleep(0.01)
    u = await user(w.pool)
    tag = unique("tr")
    await w.timeline.post(u, NewTweet(f"one #{tag}", [tag]))
    q = search_query({"tag": tag})
    await w.timeline.search(q)
    return u, tag, q


def test_a_post_whose_client_hangs_up_still_updates_the_cache(resolved: Settings) -> None:
    """The cache update runs after the commit even when the request is cancelled meanwhile."""
    async def scenario() -> tuple[int, int]:
        s = resolved.replaced(cache_prefix=unique("tl"), fault_post_cache_delay_ms=300)
        w = await open_resources(s)
        try:
            u = await user(w.pool)
            tag = unique("th")
            await w.timeline.post(u, NewTweet(f"one #{tag}", [tag]))
            await w.timeline.search(search_query({"tag": tag}))  # fills the entry
            assert w.redis is not None
            key = f"{s.cache.cache_prefix}:t:{tag}"
            before = await w.redis.zcard(key)
            task = asyncio.ensure_future(w.timeline.post(u, NewTweet(f"two #{tag}", [tag])))
            count = "SELECT count(*) FROM tweet_tags WHERE tag = $1"
            while await w.pool.fetchval(count, tag) < 2:  # committed; its cache update waits 0.3 s
                await asyncio.sleep(0.01)
            task.cancel()  # the client hung up
            redis = w.redis
            deadline = time.monotonic() + 10
            while await redis.zcard(key) == before and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # the update goes on, shielded from the cancel
            return before, await redis.zcard(key)
        finally:
            await close_resources(w)

    before, after = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert after == before + 1  # the cancelled post's tweet is in the cached entry


def test_repair_invalidates_every_tag_posted_to_since(resolved: Settings) -> None:
    """mark_dirty(since): the cache is bypassed until the tags posted to since then have been
    invalidated; then it is used again, and the entries hold the database's truth."""
    async def scenario() -> tuple[str, str, bool, int]:
        s = resolved.replaced(cache_prefix=unique("tl"))
        w = await open_resources(s)
        try:
            u, tag, q = await one_cached_tweet(w)
            # A tweet written behind the cache's back (as by a worker that died before its update).
            async with w.pool.acquire() as conn:
                await tweets.post(conn, u.user_id, u.username, f"two #{tag}", [tag])
            stale = ORJSON.loads((await w.timeline.search(q))[0])["pagination"]["total"]
            w.timeline.mark_dirty(datetime.now(UTC) - timedelta(seconds=5))
            _, during = await w.timeline.search(q)
            while w.timeline.dirty:
                await asyncio.sleep(0.01)
            body, after = await w.timeline.search(q)
            return during, after, stale == 1, ORJSON.loads(body)["pagination"]["total"]
        finally:
            await close_resources(w)

    during, after, was_stale, total = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert was_stale  # the hidden write was invisible through the cache before the repair
    assert during == "BYPASS" and after in ("MISS", "HIT") and total == 2


def test_a_failure_during_the_repair_is_repaired_too(resolved: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A post that commits after the repair read its tags, and whose cache update fails, must not
    be left out: the repair is done only when no failure came while it worked, whatever its time
    (mark_dirty keeps the earliest time, so a later one does not change it)."""
    async def scenario() -> tuple[str, int]:
        s = resolved.replaced(cache_prefix=unique("tl"))
        w = await open_resources(s)
        try:
            u, tag, q = await one_cached_tweet(w)  # the entry holds one tweet
            await asyncio.sleep(2.2)  # past mark_dirty's 2 s margin: the repair's query leaves the tag out
            real = tweets.tags_since

            async def read_then_fail(conn, since):  # type: ignore[no-untyped-def]
                tags = await real(conn, since)
                if tag not in tags:  # the repair's first pass: a post commits now, its update fails
                    async with w.pool.acquire() as other:
                        row = await tweets.post(other, u.user_id, u.username, f"two #{tag}", [tag])
                    w.timeline.mark_dirty(row["created_at"])
                return tags

            monkeypatch.setattr(tweets, "tags_since", read_then_fail)
            w.timeline.mark_dirty(datetime.now(UTC))
            while w.timeline.dirty:
                await asyncio.sleep(0.01)
            body, state = await w.timeline.search(q)
            return state, ORJSON.loads(body)["pagination"]["total"]
        finally:
            await close_resources(w)

    state, total = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert total == 2, (state, total)  # the second tweet is seen, not the entry from before it


def test_no_repair_outlives_a_closed_timeline(resolved: Settings) -> None:
    """A feed loss reported while a worker closes must not start a repair against the closed pool
    (seen once retrying forever: 'cache repair postponed: pool is closed')."""
    async def scenario() -> list[str]:
        w = await open_resources(resolved.replaced(cache_prefix=unique("tl")))
        await close_resources(w)
        w.timeline.mark_dirty(datetime.now(UTC))  # as the feed's on_lost during shutdown
        await asyncio.sleep(0.2)
        return [t.get_coro().__qualname__ for t in asyncio.all_tasks() if not t.done()]  # type: ignore[union-attr]

    running = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert not [name for name in running if name.endswith("_repair_loop")], running


def test_a_page_past_the_cached_window_goes_to_postgres_alone(resolved: Settings) -> None:
    """An offset at or past CACHE_TAG_SIZE cannot be in a tag's entry: the page comes from
    PostgreSQL, right, without a Redis read or a fill; a page within the window still fills it."""
    async def scenario() -> tuple[list[int], list[int], int, int]:
        s = resolved.replaced(cache_prefix=unique("tl"), cache_tag_size=3, local_cache_ttl=0)
        w = await open_resources(s)
        try:
            u = await user(w.pool)
            tag = unique("deep")
            posted = [await w.timeline.post(u, NewTweet(f"t{i} #{tag}", [tag])) for i in range(5)]
            ids = [ORJSON.loads(body)["id"] for body in posted]
            assert w.redis is not None
            key = f"{s.cache.cache_prefix}:t:{tag}"
            await w.redis.delete(key)
            deep, state = await w.timeline.search(search_query({"tag": tag, "page": "2", "page_size": "3"}))
            after_deep = await w.redis.exists(key)
            await w.timeline.search(search_query({"tag": tag, "page": "1", "page_size": "3"}))
            assert state == "MISS"
            return ids, [t["id"] for t in ORJSON.loads(deep)["data"]], after_deep, await w.redis.exists(key)
        finally:
            await close_resources(w)

    ids, deep, after_deep, after_first = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert deep == [ids[1], ids[0]]  # newest first: the 4th and 5th newest
    assert after_deep == 0 and after_first == 1
