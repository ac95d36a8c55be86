"""Tweets and tags: SQL as named constants, functions take a connection."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from service.db import Conn

# One statement: one round trip and one transaction whatever the number of tags (arrays +
# unnest). Count shards are locked in tag-name order, so concurrent posts sharing tags cannot
# deadlock; each backend bumps its own shard, so posts to a hot tag do not queue on one row.
POST = """
WITH tweet AS (
    INSERT INTO tweets (user_id, msg, tags) VALUES ($1, $2, $3::text[])
    RETURNING id, created_at
), link AS (
    INSERT INTO tweet_tags (tag, tweet_id) SELECT t, tweet.id FROM unnest($3::text[]) AS t, tweet
), count AS (
    INSERT INTO tags AS g (name, shard, tweet_count)
    SELECT t, pg_backend_pid() % 32, 1 FROM unnest($3::text[]) AS t ORDER BY t
    ON CONFLICT (name, shard) DO UPDATE SET tweet_count = g.tweet_count + 1
)
SELECT id, created_at FROM tweet"""

# The tag's total and one page, newest first, in one round trip. Always at least one row: with
# no tweets on the page, a single row with a NULL id still carries the total.
SEARCH = """
SELECT s.total, p.id, p.msg, p.user_id, p.username, p.created_at, p.tags
FROM (SELECT coalesce(sum(tweet_count), 0)::bigint AS total FROM tags WHERE name = $1) s
LEFT JOIN LATERAL (
    SELECT t.id, t.msg, t.user_id, u.username, t.created_at, t.tags
    FROM (SELECT tweet_id FROM tweet_tags WHERE tag = $1 AND tweet_id < $4
          ORDER BY tweet_id DESC LIMIT $2 OFFSET $3) page
    JOIN tweets t ON t.id = page.tweet_id
    JOIN users u ON u.id = t.user_id
) p ON true
ORDER BY p.id DESC"""

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
