"""Tweets and tags: SQL as named constants, functions take a connection."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from service.db import Conn

# One statement: one round trip and one transaction whatever the number of tags (arrays +
# unnest). The tweet's JSON is built here, by tweet_json() (sql/006), and stored with it: the
# response to the post, the cache and every later read use those bytes. Count shards are locked
# in tag-name order, so concurrent posts sharing tags cannot deadlock; each backend bumps its own
# shard, so posts to a hot tag do not queue on one row.
POST = """
WITH new AS (
    SELECT nextval('tweets_id_seq') AS id, now() AS at
), tweet AS (
    INSERT INTO tweets (id, user_id, msg, tags, created_at, body) OVERRIDING SYSTEM VALUE
    SELECT id, $1::bigint, $2::text, $3::text[], at,
           tweet_json(id, $2::text, $1::bigint, $4::text, at, $3::text[])
    FROM new
    RETURNING id, created_at, body
), link AS (
    INSERT INTO tweet_tags (tag, tweet_id) SELECT t, tweet.id FROM unnest($3::text[]) AS t, tweet
), count AS (
    INSERT INTO tags AS g (name, shard, tweet_count)
    SELECT t, pg_backend_pid() % 32, 1 FROM unnest($3::text[]) AS t ORDER BY t
    ON CONFLICT (name, shard) DO UPDATE SET tweet_count = g.tweet_count + 1
)
SELECT id, created_at, body FROM tweet"""

# Several posts in one statement (service/db/posts.py), each as POST would write it: ids in the
# order given, tags as one space-separated text per post (tags are word characters only), each
# count shard bumped once by the number of its posts. Rows come back in the order given.
POST_MANY = """
WITH input AS (
    SELECT nextval('tweets_id_seq') AS id, now() AS at, i.u, i.m, i.name, i.n,
           string_to_array(i.t, ' ') AS tags
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS i(u, m, t, name, n)
), tweet AS (
    INSERT INTO tweets (id, user_id, msg, tags, created_at, body) OVERRIDING SYSTEM VALUE
    SELECT id, u, m, tags, at, tweet_json(id, m, u, name, at, tags) FROM input ORDER BY n
    RETURNING id, created_at, body
), link AS (
    INSERT INTO tweet_tags (tag, tweet_id) SELECT t, input.id FROM input, unnest(input.tags) AS t
), count AS (
    INSERT INTO tags AS g (name, shard, tweet_count)
    SELECT t, pg_backend_pid() % 32, count(*) FROM input, unnest(input.tags) AS t GROUP BY t ORDER BY t
    ON CONFLICT (name, shard) DO UPDATE SET tweet_count = g.tweet_count + excluded.tweet_count
)
SELECT tweet.id, tweet.created_at, tweet.body FROM input JOIN tweet USING (id) ORDER BY input.n"""

TOTAL = "SELECT coalesce(sum(tweet_count), 0)::bigint FROM tags WHERE name = $1"
NEWEST = """SELECT tweet_id FROM tweet_tags WHERE tag = $1 AND tweet_id < $4
    ORDER BY tweet_id DESC LIMIT $2 OFFSET $3"""
# A page of (id, JSON) rows: the stored JSON, or (STORED_TWEET_JSON=false, for the ablation) the
# same bytes built per row per read, as before it was stored.
PAGE = {True: f"SELECT t.id, t.body FROM ({NEWEST}) page JOIN tweets t ON t.id = page.tweet_id",
        False: f"""SELECT t.id, tweet_json(t.id, t.msg, t.user_id, u.username, t.created_at, t.tags) AS body
                   FROM ({NEWEST}) page JOIN tweets t ON t.id = page.tweet_id
                   JOIN users u ON u.id = t.user_id"""}

# The tag's total and a page of (id, JSON) rows, newest first, in one round trip; always at
# least one row: with no tweets on the page, a single row with a NULL id carries the total.
SEARCH_ROWS = {stored: f"""
SELECT s.total, p.id, p.body
FROM ({TOTAL}) s(total) LEFT JOIN LATERAL ({page}) p ON true
ORDER BY p.id DESC""" for stored, page in PAGE.items()}

# The tag's total and the page as one comma-joined JSON text: a response body ready to wrap.
SEARCH_PAGE = {stored: f"""
SELECT ({TOTAL}) AS total,
       coalesce((SELECT string_agg(p.body, ',' ORDER BY p.id DESC) FROM ({page}) p), '') AS items"""
               for stored, page in PAGE.items()}

# The same two as calls of their functions (sql/007_search_functions.sql), for a transaction-mode
# pooler: no prepared statement survives there, and a call is planned in microseconds while the
# query inside keeps its plan on each PostgreSQL connection. Stored JSON only.
SEARCH_ROWS_CALL = "SELECT total, id, body FROM search_rows($1, $2, $3, $4)"
SEARCH_PAGE_CALL = "SELECT total, items FROM search_page($1, $2, $3, $4)"

TAGS_SINCE = "SELECT DISTINCT unnest(tags) FROM tweets WHERE created_at >= $1"

NO_LIMIT = 2**63 - 1


async def post(conn: Conn, user_id: int, username: str, msg: str, tags: list[str]) -> asyncpg.Record:
    """The new tweet's id, created_at and JSON (body)."""
    row = await conn.fetchrow(POST, user_id, msg, tags, username)
    assert row is not None
    return row


async def post_many(conn: Conn, posts: list[tuple[int, str, str, list[str]]]) -> list[asyncpg.Record]:
    """POST for each (user id, username, msg, tags), in one statement: their rows in that order."""
    rows = await conn.fetch(POST_MANY, [p[0] for p in posts], [p[2] for p in posts],
                            [" ".join(p[3]) for p in posts], [p[1] for p in posts])
    assert len(rows) == len(posts)
    return rows


async def search(conn: Conn, tag: str, limit: int, offset: int, before_id: int | None,
                 stored: bool = True, called: bool = False) -> tuple[int, list[tuple[int, bytes]]]:
    """(total tweets with the tag, [(tweet id, tweet JSON)] newest first)."""
    sql = SEARCH_ROWS_CALL if called and stored else SEARCH_ROWS[stored]
    rows = await conn.fetch(sql, tag, limit, offset, before_id or NO_LIMIT)
    return rows[0]["total"], [(r["id"], r["body"].encode()) for r in rows if r["id"] is not None]


async def search_page(conn: Conn, tag: str, limit: int, offset: int, before_id: int | None,
                      stored: bool = True, called: bool = False) -> tuple[int, bytes]:
    """(total tweets with the tag, the page's tweets as comma-joined JSON objects)."""
    sql = SEARCH_PAGE_CALL if called and stored else SEARCH_PAGE[stored]
    row = await conn.fetchrow(sql, tag, limit, offset, before_id or NO_LIMIT)
    assert row is not None
    return row["total"], row["items"].encode()


async def tags_since(conn: Conn, since: datetime) -> list[str]:
    return [r[0] for r in await conn.fetch(TAGS_SINCE, since)]

