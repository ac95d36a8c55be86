"""Users: SQL as named constants, functions take a connection."""

from __future__ import annotations

import asyncpg

from service.db import Conn

CREATE = """
INSERT INTO users (username, full_name, password_hash) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING id"""
BY_NAME = "SELECT id, username, full_name, password_hash FROM users WHERE lower(username) = lower($1)"
BY_ID = "SELECT id, username, full_name FROM users WHERE id = $1"
SET_HASH = "UPDATE users SET password_hash = $2 WHERE id = $1"


async def create(conn: Conn, username: str, full_name: str, password_hash: str) -> int | None:
    """The new user's id, or None when the username is taken (in any letter case)."""
    user_id: int | None = await conn.fetchval(CREATE, username, full_name, password_hash)
    return user_id


async def by_name(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_NAME, username)


async def by_id(conn: Conn, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_ID, user_id)


async def set_hash(conn: Conn, user_id: int, password_hash: str) -> None:
    await conn.execute(SET_HASH, user_id, password_hash)
