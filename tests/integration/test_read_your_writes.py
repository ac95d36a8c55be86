"""Read-your-writes through the cache's single-flight, driven step by step in process against the
real PostgreSQL and Redis: a search that starts after a post's 201 must include that post, even
when it joins a cache fill that read the database before the post committed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from service.cache.client import Breaker
from service.cache.guard import Guard
from service.cache.local import LocalCache
from service.cache.tags import TagCache
from service.codec import ORJSON
from service.db.database import Database
from service.security.tokens import Identity
from service.timeline import Timeline
from service.validate import NewTweet, search_query
from tests.conftest import unique


async def scenario(urls: tuple[str, str],
                   monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    from service.db import tweets as tweets_module

    pool = await asyncpg.create_pool(urls[0], min_size=1, max_size=4)
    client = aioredis.Redis.from_url(urls[1])
    try:
        name = unique("ryw_")
        user_id = await pool.fetchval("INSERT INTO users (username, full_name, password_hash) "
                                      "VALUES ($1, 'R', 'x') RETURNING id", name)
        user = Identity(user_id, name, time.time() + 60)
        cache = TagCache(client, "st", 600, 0.0, 1000, True)
        local = LocalCache(60.0, 1 << 20)
        local.active = True  # as while the invalidation feed is live
        timeline = Timeline(Database(pool, 2.0), ORJSON, cache=cache, guard=Guard(Breaker(3, 1.0)),
                            local=local)
        tag = unique("ryw")
        await timeline.post(user, NewTweet(f"first #{tag}", [tag]))

        real_search = tweets_module.search
        read_done, release = asyncio.Event(), asyncio.Event()

        async def slow_search(*args: Any, **kwargs: Any) -> Any:
            result = await real_search(*args, **kwargs)  # the fill has read the database...
            read_done.set()
            await release.wait()  # ...and is slow to store it
            return result

        monkeypatch.setattr(tweets_module, "search", slow_search)
        q = search_query({"tag": tag})
        before = asyncio.create_task(timeline.search(q))  # starts the fill
        await read_done.wait()
        monkeypatch.setattr(tweets_module, "search", real_search)
        await timeline.post(user, NewTweet(f"second #{tag}", [tag]))  # committed: the "201"
        after = asyncio.create_task(timeline.search(q))  # starts after the 201: joins the fill
        await asyncio.sleep(0.05)
        release.set()
        await before
        body, _ = await after
        again, _ = await timeline.search(q)  # and nothing stale was kept in process
        return ORJSON.loads(body), ORJSON.loads(again)
    finally:
        await client.aclose()
        await pool.close()


def test_a_search_after_a_post_joining_an_older_fill_shows_the_post(
        urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    after, again = asyncio.run(scenario(urls, monkeypatch))
    for page in (after, again):
        assert page["pagination"]["total"] == 2
        assert [t["msg"].split()[0] for t in page["data"]] == ["second", "first"]
