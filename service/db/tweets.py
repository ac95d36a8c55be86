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

# A tweet as JSON text, built by PostgreSQL: decoding 7 typed columns per row and re-encoding
# them costs the service more CPU than the query itself. Byte for byte what
# service.timeline.tweet_json writes with orjson (compact, same key order, same escapes: to_json
# escapes quotes, backslashes and control characters as orjson does and keeps other text as
# UTF-8), so a tweet reads the same from a post, a cache fill and the database
# (tests/integration/test_tweets.py compares them).
TWEET_JSON = """'{"id":' || t.id || ',"msg":' || to_json(t.msg) || ',"user_id":' || t.user_id
    || ',"username":' || to_json(u.username) || ',"created_at":"'
    || to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    || '","tags":' || array_to_json(t.tags) || '}'"""
TOTAL = "SELECT coalesce(sum(tweet_count), 0)::bigint FROM tags WHERE name = $1"
PAGE = f"""
SELECT t.id, {TWEET_JSON} AS body
FROM (SELECT tweet_id FROM tweet_tags WHERE tag = $1 AND tweet_id < $4
      ORDER BY tweet_id DESC LIMIT $2 OFFSET $3) page
JOIN tweets t ON t.id = page.tweet_id
JOIN users u ON u.id = t.user_id"""

# The tag's total and a page of (id, JSON) rows, newest first, in one round trip; always at
# least one row: with no tweets on the page, a single row with a NULL id carries the total.
SEARCH_ROWS = f"""
SELECT s.total, p.id, p.body
FROM ({TOTAL}) s(total) LEFT JOIN LATERAL ({PAGE}) p ON true
ORDER BY p.id DESC"""

# The tag's total and the page as one comma-joined JSON text: a response body ready to wrap.
SEARCH_PAGE = f"""
SELECT ({TOTAL}) AS total,
       coalesce((SELECT string_agg(p.body, ',' ORDER BY p.id DESC) FROM ({PAGE}) p), '') AS items"""

TAGS_SINCE = "SELECT DISTINCT unnest(tags) FROM tweets WHERE created_at >= $1"

NO_LIMIT = 2**63 - 1


async def post(conn: Conn, user_id: int, msg: str, tags: list[str]) -> asyncpg.Record:
    row = await conn.fetchrow(POST, user_id, msg, tags)
    assert row is not None
    return row


async def search(conn: Conn, tag: str, limit: int, offset: int,
                 before_id: int | None) -> tuple[int, list[tuple[int, bytes]]]:
    """(total tweets with the tag, [(tweet id, tweet JSON)] newest first)."""
    rows = await conn.fetch(SEARCH_ROWS, tag, limit, offset, before_id or NO_LIMIT)
    return rows[0]["total"], [(r["id"], r["body"].encode()) for r in rows if r["id"] is not None]


async def search_page(conn: Conn, tag: str, limit: int, offset: int,
                      before_id: int | None) -> tuple[int, bytes]:
    """(total tweets with the tag, the page's tweets as comma-joined JSON objects)."""
    row = await conn.fetchrow(SEARCH_PAGE, tag, limit, offset, before_id or NO_LIMIT)
    assert row is not None
    return row["total"], row["items"].encode()


async def tags_since(conn: Conn, since: datetime) -> list[str]:
    return [r[0] for r in await conn.fetch(TAGS_SINCE, since)]

