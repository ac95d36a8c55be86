"""Posts written together (service/db/posts.py) against the test PostgreSQL: each batched post is
written as it would be alone, the ones PostgreSQL refuses fail alone, and through the service
every post that arrived together is acknowledged, counted and found."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aredis

from service.db import tweets
from service.db.database import Database
from service.db.posts import Post, Posts
from tests.conftest import Server, register_and_login, tag_ids, unique


async def with_user(dsn: str, scenario: Any) -> Any:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        name = unique("batch_")
        user_id = await pool.fetchval(
            "INSERT INTO users (username, full_name, password_hash) VALUES ($1, 'B', 'x') RETURNING id", name)
        return await scenario(pool, user_id, name)
    finally:
        await pool.close()


async def write_all(posts: Posts, batch: list[Post]) -> list[Any]:
    """Every post at once, as concurrent requests would: the first goes alone, the rest wait."""
    return await asyncio.gather(*(posts.write(*p) for p in batch), return_exceptions=True)


def test_posts_written_together_are_each_as_written_alone(urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool, user_id: int, name: str) -> None:
        posts = Posts(Database(pool, 2.0), batch_max=64, slots=1)
        a, b = unique("bt"), "ünï" + unique("")  # a non-ASCII tag too
        batch: list[Post] = [(user_id, name, f"post {i} «ok» \"q\" \\ #{a}", [a, b][: i % 3])
                             for i in range(40)]
        rows = await write_all(posts, batch)
        assert posts.batched >= 30  # all but the first few went in batches
        ids = [r["id"] for r in rows]
        assert ids == sorted(ids) and len(set(ids)) == 40  # in arrival order
        async with pool.acquire() as conn:
            alone = await tweets.post(conn, user_id, name, batch[1][2], batch[1][3])
            for (uid, username, msg, tags), row in zip(batch, rows, strict=True):
                body = json.loads(row["body"])
                assert body == {"id": row["id"], "msg": msg, "user_id": uid, "username": username,
                                "created_at": body["created_at"], "tags": tags}
                stored = await conn.fetchrow("SELECT tags, body FROM tweets WHERE id = $1", row["id"])
                assert stored is not None and stored["tags"] == tags and stored["body"] == row["body"]
                linked = await conn.fetch("SELECT tag FROM tweet_tags WHERE tweet_id = $1", row["id"])
                assert sorted(r["tag"] for r in linked) == sorted(tags)
            assert list(json.loads(alone["body"])) == list(json.loads(rows[1]["body"]))  # keys, in order
            assert json.loads(alone["body"])["tags"] == json.loads(rows[1]["body"])["tags"]
            counts = Counter(t for _, _, _, tags in batch for t in tags) + Counter(batch[1][3])
            for tag, n in counts.items():
                assert await conn.fetchval(tweets.TOTAL, tag) == n, tag

    asyncio.run(with_user(urls[0], scenario))


def test_a_post_postgresql_refuses_fails_alone(urls: tuple[str, str]) -> None:
    async def scenario(pool: asyncpg.Pool, user_id: int, name: str) -> None:
        posts = Posts(Database(pool, 2.0), batch_max=64, slots=1)
        gone = await pool.fetchval("SELECT coalesce(max(id), 0) + 1000 FROM users")  # no such user
        tag = unique("bt")
        batch: list[Post] = [(gone if i == 5 else user_id, name, f"#{tag} {i}", [tag]) for i in range(12)]
        results = await write_all(posts, batch)
        assert isinstance(results[5], asyncpg.ForeignKeyViolationError)
        assert all(isinstance(r, asyncpg.Record) for i, r in enumerate(results) if i != 5)
        assert await pool.fetchval(tweets.TOTAL, tag) == 11

    asyncio.run(with_user(urls[0], scenario))


@pytest.mark.parametrize(("batch_max", "together"), [("64", "true"), ("64", "false"), ("1", "true")],
                         ids=["batched, updates together", "batched, updates one by one", "each post alone"])
def test_posts_arriving_together_through_the_service(
        urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory, batch_max: str,
        together: str) -> None:
    prefix = unique("bt")
    srv = Server({"POST_BATCH_MAX": batch_max, "POST_UPDATES_TOGETHER": together, "CACHE_PREFIX": prefix},
                 tmp_path_factory.mktemp("server") / "server.log")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
        tag = unique("bt")

        async def burst() -> tuple[list[httpx.Response], int]:
            """The answers, and the feed messages naming the tag (read after the last answer: each
            post's message is published before its 201)."""
            feed = aredis.Redis.from_url(urls[1]).pubsub()
            await feed.subscribe(f"{prefix}:inv")
            async with httpx.AsyncClient(base_url=srv.url, timeout=10,
                                         limits=httpx.Limits(max_connections=32)) as c:
                answers = await asyncio.gather(*(c.post("/api/v1/tweet", json={"msg": f"#{tag} {i}"},
                                                        headers=auth) for i in range(64)))
            messages = 0
            while (m := await feed.get_message(timeout=0.5)) is not None:
                messages += m["type"] == "message" and tag in m["data"].decode().split()
            await feed.aclose()  # type: ignore[no-untyped-call]
            return answers, messages

        answers, messages = asyncio.run(burst())
        assert [r.status_code for r in answers] == [201] * 64
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            assert tag_ids(c, tag, auth) == {r.json()["data"]["id"] for r in answers}
            page = c.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth).json()
            assert page["pagination"]["total"] == 64
            metrics = c.get("/metrics").text
        batched = float(next(line.split()[1] for line in metrics.splitlines()
                             if line.startswith("posts_batched_total")))
        assert (batched > 0) == (batch_max != "1"), batched
        if together == "false":
            assert messages == 64  # one message a post
        elif batch_max != "1":
            assert 1 <= messages < 64, messages  # a batch's posts tell the workers once
        else:
            assert 1 <= messages <= 64, messages
    finally:
        srv.stop()
