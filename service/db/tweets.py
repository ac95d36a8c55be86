"""Tweets and tags: SQL as named constants, functions take a connection."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from service.db import Conn

# One statement, so one round trip and one transaction whatever the number of tags. Tag rows
# are upserted in name order, so concurrent posts lock shared tags in the same order and cannot
# deadlock; the unique name makes a duplicate tag impossible, the link key a duplicate link.
POST = """
WITH tweet AS (
    INSERT INTO tweets (user_id, msg, tags) VALUES ($1, $2, $3::text[])
    RETURNING id, created_at
), tag AS (
    INSERT INTO tags (name, tweet_count)
    SELECT name, 1 FROM unnest($3::text[]) AS name ORDER BY name
    ON CONFLICT (name) DO UPDATE SET tweet_count = tags.tweet_count + 1
    RETURNING id
), link AS (
    INSERT INTO tweet_tags (tag_id, tweet_id) SELECT tag.id, tweet.id FROM tag CROSS JOIN tweet
)
SELECT id, created_at FROM tweet"""

# The tag's total and one page, newest first, in one round trip. No tag row: no rows at all.
# A tag with no tweets on this page: one row with a NULL id (the total is still there).
SEARCH = """
SELECT g.tweet_count AS total, t.id, t.msg, t.user_id, u.username, t.created_at, t.tags
FROM tags g
LEFT JOIN LATERAL (
    SELECT tt.tweet_id FROM tweet_tags tt
    WHERE tt.tag_id = g.id AND tt.tweet_id < $4
    ORDER BY tt.tweet_id DESC
    LIMIT $2 OFFSET $3
) page ON true
LEFT JOIN tweets t ON t.id = page.tweet_id
LEFT JOIN users u ON u.id = t.user_id
WHERE g.name = $1
ORDER BY t.id DESC"""

TAGS_SINCE = "SELECT DISTINCT unnest(tags) FROM tweets WHERE created_at >= $1"

NO_LIMIT = 2**63 - 1


async def post(conn: Conn, user_id: int, msg: str, tags: list[str]) -> asyncpg.Record:
    row = await conn.fetchrow(POST, user_id, msg, tags)
    assert row is not None
    return row


async def search(conn: Conn, tag: str, limit: int, offset: int,
                 before_id: int | None) -> tuple[int, list[asyncpg.Record]]:
    """(total tweets with the tag, the page's rows)."""
    rows = await conn.fetch(SEARCH, tag, limit, offset, before_id or NO_LIMIT)
    if not rows:
        return 0, []
    return rows[0]["total"], [r for r in rows if r["id"] is not None]


async def tags_since(conn: Conn, since: datetime) -> list[str]:
    return [r[0] for r in await conn.fetch(TAGS_SINCE, since)]
