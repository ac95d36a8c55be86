"""The in-process cache's invalidation feed, against the real Redis."""

import asyncio
import time

import httpx
import redis.asyncio as aredis

from service import stack
from service.cache.local import LocalCache, listen
from service.settings import Settings
from tests.conftest import register_and_login, start_server, unique


async def wait_for(check, seconds: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if check():
            return time.perf_counter() - started
        await asyncio.sleep(0.001)
    raise AssertionError("not reached")


def test_publish_invalidates_and_lost_feed_disables(urls: tuple[str, str], settings: Settings) -> None:
    async def scenario() -> float:
        client = aredis.Redis.from_url(urls[1], socket_timeout=0.25)
        local = LocalCache(ttl=60, size=100)
        task = asyncio.create_task(listen(client, "st:inv", local, 0.1))
        try:
            await wait_for(lambda: local.active)
            tag = unique("li")
            local.put((tag, 1, 10, None), b"page", local.token(tag))
            assert local.get((tag, 1, 10, None)) == b"page"
            publisher = aredis.Redis.from_url(urls[1])
            await publisher.publish("st:inv", tag)
            await publisher.aclose()
            took = await wait_for(lambda: local.get((tag, 1, 10, None)) is None)
            local.put((tag, 1, 10, None), b"page", local.token(tag))
            stack.redis_stop(settings)
            await wait_for(lambda: not local.active)
            assert local.get((tag, 1, 10, None)) is None  # cleared: invalidations may be lost now
            stack.redis_start(settings)
            await wait_for(lambda: local.active, 10)
            return took
        finally:
            task.cancel()
            stack.up(settings)

    assert asyncio.run(scenario()) < 0.05


def test_other_worker_sees_post_despite_long_local_ttl(urls: tuple[str, str], tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    # A 60 s local TTL: only the pub/sub invalidation can make the other worker see the post.
    srv = start_server(urls, tmp_path_factory, WORKERS="2", LOCAL_CACHE_TTL="60")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
        tag = unique("lw")
        httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} first"}, headers=auth)
        for _ in range(20):  # warm both workers' local caches
            httpx.get(f"{srv.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
        new = httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} second"}, headers=auth)
        new_id = new.json()["data"]["id"]
        time.sleep(0.05)
        for _ in range(20):
            s = httpx.get(f"{srv.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
            assert s.json()["data"][0]["id"] == new_id and s.json()["pagination"]["total"] == 2
    finally:
        srv.stop()
