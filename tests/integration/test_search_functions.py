"""The search functions (sql/007_search_functions.sql) that a service behind a transaction pooler
calls: the same rows and bytes as the queries a direct service prepares, for every page shape."""

from __future__ import annotations

import asyncio

import asyncpg

from service.db import tweets
from tests.conftest import unique


async def compare(dsn: str) -> int:
    """Posts on a tag (non-ASCII included), then every kind of page read both ways; cases compared."""
    conn = await asyncpg.connect(dsn)
    try:
        user = await conn.fetchval("INSERT INTO users (username, full_name, password_hash) "
                                   "VALUES ($1, 'Fünf', 'x') RETURNING id", unique("fn"))
        tag, empty = unique("fn"), unique("none")
        ids = []
        for i in range(23):
            row = await tweets.post(conn, user, "fn", f"#{tag} número {i} \"quoted\" ☃", [tag])
            ids.append(row["id"])
        cases = [(tag, 10, 0, None), (tag, 10, 20, None), (tag, 50, 0, None), (tag, 5, 0, ids[7]),
                 (tag, 5, 3, ids[12]), (tag, 10, 100, None), (empty, 10, 0, None), (tag, 1, 0, ids[0])]
        for case in cases:
            assert await tweets.search(conn, *case, called=True) == await tweets.search(conn, *case), case
            page = await tweets.search_page(conn, *case)
            assert await tweets.search_page(conn, *case, called=True) == page, case
        assert (await tweets.search(conn, tag, 50, 0, None, called=True))[0] == 23
        return len(cases)
    finally:
        await conn.close()


def test_the_search_functions_answer_byte_for_byte_as_the_queries(urls: tuple[str, str]) -> None:
    assert asyncio.run(compare(urls[0])) == 8
