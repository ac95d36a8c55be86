"""The invalidation feed: when its connection is cut and redis-py reconnects by itself, the pages
kept in process are dropped, since invalidations sent meanwhile were lost."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from service.cache.client import create_client
from service.cache.local import LocalCache, listen
from service.settings import Settings


async def cut_and_watch(settings: Settings, url: str) -> tuple[bytes | None, bytes | None]:
    name = f"feed-{uuid.uuid4().hex[:8]}"
    client = create_client(settings, url + f"?client_name={name}")
    admin = aioredis.Redis.from_url(url)
    local = LocalCache(60.0, 100)
    feed = asyncio.create_task(listen(client, f"{name}:inv", local, 0.1))
    try:
        for _ in range(100):
            if local.active:
                break
            await asyncio.sleep(0.02)
        key = ("tag", 1, 10, None)
        local.put(key, b"page", local.token("tag"))
        before = local.get(key)
        clients = await admin.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c.get("name") == name]
        assert ids, clients
        for client_id in ids:
            await admin.execute_command("CLIENT", "KILL", "ID", client_id)
        await asyncio.sleep(2.5)  # the client notices, reconnects and subscribes again
        assert not feed.done()
        return before, local.get(key)
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await client.aclose()
        await admin.aclose()


def test_pages_are_dropped_when_the_feed_reconnects(settings: Settings, urls: tuple[str, str]) -> None:
    before, after = asyncio.run(cut_and_watch(settings, urls[1]))
    assert before == b"page"
    assert after is None


