"""The cache's coherence mechanisms, driven directly against the real Redis and PostgreSQL."""

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest
import redis as sync_redis
import redis.asyncio as aredis

from service.cache.tags import TOTAL, Miss, Posted, TagCache
from tests.conftest import Server, register_and_login, start_server, unique, worker_of

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def cache(url: str, size: int = 5, pipeline: bool = True) -> tuple[aredis.Redis, TagCache]:
    client = aredis.Redis.from_url(url)
    return client, TagCache(client, "st", 60, 0.1, size, pipeline)


def body(i: int) -> bytes:
    return json.dumps({"id": i, "msg": f"m{i}"}).encode()


def test_fill_discarded_when_a_post_raced_it(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[bool, bool]:
        client, c = cache(urls[1])
        tag = unique("race")
        version = await c.version(tag)          # fill reads the version, then queries PostgreSQL...
        await c.add_many([([tag], 10, body(10))])  # ...meanwhile a post commits and updates the cache
        stale = await c.fill(tag, version, 1, [(9, body(9))])  # fill's result lacks tweet 10
        fresh = await c.fill(tag, await c.version(tag), 2, [(10, body(10)), (9, body(9))])
        await client.aclose()
        return stale, fresh

    assert run(scenario()) == (False, True)


def test_a_miss_brings_the_version_a_racing_post_then_invalidates(urls: tuple[str, str]) -> None:
    """The version read with the page (CACHE_READ_VERSION) guards the fill as a separate read does."""
    async def scenario() -> tuple[object, object, bool, bool, object]:
        client, c = cache(urls[1])
        tag = unique("rv")
        first = await c.read(tag, 0, 10, None)   # a miss: the version comes with it
        await c.add_many([([tag], 10, body(10))])  # a post commits while the fill queries PostgreSQL
        second = await c.read(tag, 0, 10, None)
        assert isinstance(first, Miss) and isinstance(second, Miss)
        stale = await c.fill(tag, first.version or b"", 1, [(9, body(9))])
        fresh = await c.fill(tag, second.version or b"", 2, [(10, body(10)), (9, body(9))])
        other, separate = cache(urls[1], pipeline=False)
        unread = await separate.read(unique("rv"), 0, 10, None)
        await client.aclose()
        await other.aclose()
        return first.version, second.version, stale, fresh, unread

    first, second, stale, fresh, unread = run(scenario())
    assert first == b"" and second == b"1"
    assert (stale, fresh) == (False, True)
    assert unread == Miss(None)  # unpipelined reads leave the version to the fill


def test_add_is_idempotent_bounded_and_counts(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[Any, ...]:
        client, c = cache(urls[1], size=5)
        tag = unique("b")
        await c.fill(tag, await c.version(tag), 3, [(3, body(3)), (2, body(2)), (1, body(1))])
        await c.add_many([([tag], 3, body(3))])  # already there (the fill saw it): no double count
        set_at = time.monotonic()  # before the adds: the TTL the last one set has run at most since
        for i in range(4, 9):
            await c.add_many([([tag], i, body(i))])
        page = await c.read(tag, 0, 10, None)
        ttl = await client.pttl(c.entry_key(tag))
        elapsed_ms = (time.monotonic() - set_at) * 1000  # PTTL counts down from the TTL set
        await client.aclose()
        return page, ttl, elapsed_ms

    page, ttl, elapsed_ms = run(scenario())
    assert page.total == 8
    assert [json.loads(b)["id"] for b in page.items] == [8, 7, 6, 5, 4]  # bounded to 5, newest kept
    assert not page.complete  # a 10-item page needs tweets beyond the cached window
    # 60 s +/- 10% jitter, set by the last add, less the time since (PTTL was 53,999 once)
    assert 54_000 - elapsed_ms - 1 <= ttl <= 66_000, (ttl, elapsed_ms)


def test_read_without_pipeline_matches(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[Any, ...]:
        client, piped = cache(urls[1], pipeline=True)
        _, single = cache(urls[1], pipeline=False)
        tag = unique("np")
        await piped.fill(tag, b"", 2, [(2, body(2)), (1, body(1))])
        a = await piped.read(tag, 0, 10, None)
        b = await single.read(tag, 0, 10, None)
        await single.add_many([([tag, unique("other")], 3, body(3))])
        c = await piped.read(tag, 0, 1, None)
        await client.aclose()
        return a, b, c

    a, b, c = run(scenario())
    assert a == b and a.total == 2 and a.complete
    assert c.total == 3 and json.loads(c.items[0])["id"] == 3


def test_two_workers_agree_after_post(urls: tuple[str, str], tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    srv: Server = start_server(urls, tmp_path_factory, WORKERS="2")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as setup:
            _, auth = register_and_login(setup)
        tag = unique("w")
        answered: set[str] = set()
        for round_ in range(10):
            # A fresh connection per request: Linux spreads them over both workers.
            r = httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} {round_}"}, headers=auth)
            assert r.status_code == 201
            new_id = r.json()["data"]["id"]
            for _ in range(6):
                s = httpx.get(f"{srv.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
                assert s.status_code == 200
                assert s.json()["data"][0]["id"] == new_id
                assert s.json()["pagination"]["total"] == round_ + 1
                answered.add(worker_of(s))
        assert len(answered) == 2, answered  # both workers answered: what they agree on was seen
        async def concurrent_pings() -> set[str]:
            # Connections open at the same time: one busy worker cannot accept them all (one at a
            # time, the kernel may hand every new connection to the same idle worker).
            limits = httpx.Limits(max_keepalive_connections=0, max_connections=40)
            async with httpx.AsyncClient(limits=limits, timeout=10) as c:
                rs = await asyncio.gather(*(c.get(f"{srv.url}/ping") for _ in range(40)))
            return {r.headers["x-request-id"].split("-")[0] for r in rs}

        pids: set[str] = set()
        for _ in range(5):
            pids |= asyncio.run(concurrent_pings())
        assert len(pids) == 2, "requests did not reach both workers"
    finally:
        srv.stop()


def test_cache_keys_are_namespaced(urls: tuple[str, str], client: httpx.Client, auth: dict[str, str]) -> None:
    tag = unique("ns")
    client.post("/api/v1/tweet", json={"msg": f"#{tag}"}, headers=auth)
    client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
    keys: list[bytes] = sync_redis.Redis.from_url(urls[1]).keys(f"*{tag}*")  # type: ignore[assignment]
    assert keys and all(k.startswith(b"st:") for k in keys)


@pytest.mark.parametrize("cluster", [False, True], ids=["one script call", "cluster: a call per tag"])
def test_posts_added_together_end_as_added_one_by_one(urls: tuple[str, str], cluster: bool) -> None:
    """add_many leaves every entry, total and version as the same adds one by one do (bounded,
    no double count, no entry created), with one feed message naming each tag once."""
    a, b, c = unique("a"), unique("b"), unique("c")  # c has no entry: a post never creates one

    async def scenario() -> tuple[list[Any], list[list[str]]]:
        client = aredis.Redis.from_url(urls[1])
        caches = [TagCache(client, unique("tg"), 60, 0.1, 4, True, cluster=cluster) for _ in range(2)]
        posts: list[Posted] = [([a], 5, body(5)), ([a, b, c], 6, body(6)), ([b], 7, body(7)),
                               ([a], 3, body(3)), ([a], 8, body(8)), ([a, b], 9, body(9))]
        feed = client.pubsub()
        await feed.subscribe(*(cache.channel for cache in caches))
        for cache in caches:
            await cache.fill(a, b"", 3, [(3, body(3)), (2, body(2)), (1, body(1))])
            await cache.fill(b, b"", 1, [(4, body(4))])
        await caches[0].add_many(posts)
        for post in posts:
            await caches[1].add_many([post])
        states = []
        for cache in caches:
            states.append([(await client.zrange(cache.entry_key(t), 0, -1, withscores=True),
                            await client.get(cache.version_key(t))) for t in (a, b, c)])
        heard: dict[str, list[list[str]]] = {cache.channel: [] for cache in caches}
        while (m := await feed.get_message(timeout=0.5)) is not None:
            if m["type"] == "message":
                heard[m["channel"].decode()].append(m["data"].decode().split())
        await feed.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        assert len(heard[caches[1].channel]) == len(posts)  # one by one: a message each
        return states, heard[caches[0].channel]

    (together, one_by_one), messages = run(scenario())
    assert together == one_by_one
    (entry_a, version_a), (entry_b, _), (entry_c, version_c) = together
    assert [m for m, _ in entry_a] == [TOTAL, body(5), body(6), body(8), body(9)]  # bounded to 4
    assert entry_a[0][1] == -(1 + 3 + 4)  # the total: 3 filled, 4 new (tweet 3 was there)
    assert version_a == b"5" and version_c == b"1" and entry_c == []
    assert [m for m, _ in entry_b] == [TOTAL, body(4), body(6), body(7), body(9)]
    assert messages == [[a, b, c]]
