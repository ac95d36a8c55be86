"""Which PostgreSQL connection a request uses: the primary's, or for a search that missed the
cache a streaming replica's, but only a replica that has replayed every commit acknowledged
before the search began (read-your-writes for every client, whichever instance took the post).

How that is known without a round trip per search: the primary's WAL insert position is read by
one query at a time per worker, and a search waits for a reading that *started after the search
did* (any post acknowledged before then has its commit at or below it); concurrent searches
share that reading. The replica's replay position is read the same way when the last one known
is not far enough. A replica behind, unreachable or paused means the primary answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from service.db.pool import Deadlines, PooledConnection, PoolStats

log = logging.getLogger(__name__)
PRIMARY_POSITION = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
REPLAY_POSITION = "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0'), -1)::bigint"
REPLICA_PAUSE = 1.0  # seconds the primary answers alone after the replica failed


class Fresh:
    """A value that only grows (a WAL position), read by one query at a time and shared: a
    caller gets a reading that began after it asked, never an older one."""

    def __init__(self, read: Callable[[], Awaitable[int]]) -> None:
        self._read = read
        self._current: asyncio.Task[int] | None = None  # the reading under way
        self._next: asyncio.Task[int] | None = None  # the one to start when it ends
        self.last = -1

    async def after_now(self) -> int:
        if self._current is None:
            mine = self._current = asyncio.create_task(self._run(None))
        else:  # under way since before this call: too early, wait for the next one
            if self._next is None:
                self._next = asyncio.create_task(self._run(self._current))
            mine = self._next
        return await asyncio.shield(mine)

    async def _run(self, previous: asyncio.Task[int] | None) -> int:
        if previous is not None:
            await asyncio.wait([previous])
            self._current, self._next = self._next, None
        try:
            value = await self._read()
            self.last = max(self.last, value)
            return value
        finally:
            if self._current is asyncio.current_task() and self._next is None:
                self._current = None


class Replica:
    """The replica's pool and the two positions compared for each search."""

    def __init__(self, primary: asyncpg.Pool, pool: asyncpg.Pool, timeout: float, begin: str | None,
                 stats: PoolStats, watch: Deadlines | None = None) -> None:
        self.pool = pool
        self._paused_until = 0.0

        def reader(target: asyncpg.Pool, sql: str) -> Callable[[], Awaitable[int]]:
            async def read() -> int:
                async with PooledConnection(target, timeout, begin, stats, watch=watch) as conn:
                    return int(await conn.fetchval(sql))
            return read

        self._written = Fresh(reader(primary, PRIMARY_POSITION))
        self._replayed = Fresh(reader(pool, REPLAY_POSITION))

    async def caught_up(self) -> bool:
        """Has the replica replayed every commit acknowledged before this call?"""
        if time.monotonic() < self._paused_until:
            return False
        try:
            needed = await self._written.after_now()
            if self._replayed.last >= needed:
                return True
            return await self._replayed.after_now() >= needed
        except Exception as exc:  # the replica (or the primary) is unreachable: the primary answers
            log.warning("replica not used for %.1f s: %r", REPLICA_PAUSE, exc)
            self._paused_until = time.monotonic() + REPLICA_PAUSE
            return False


class Database:
    """A worker's way to PostgreSQL: connection() for anything, reader() for a search that missed
    the cache (the replica when caught up)."""

    def __init__(self, primary: asyncpg.Pool, acquire_timeout: float, begin: str | None = None,
                 replica: Replica | None = None, stats: PoolStats | None = None, lean: bool = False,
                 watch: Deadlines | None = None, pooled: bool = False) -> None:
        self.primary = primary
        self.replica = replica
        self.stats = stats if stats is not None else PoolStats()
        self._timeout = acquire_timeout
        self._begin = begin
        self._lean = lean
        self._watch = watch
        self._pooled = pooled  # the primary's pool goes through a transaction pooler

    def connection(self) -> PooledConnection:
        return self._lend(self.primary)

    def _lend(self, pool: asyncpg.Pool) -> PooledConnection:
        return PooledConnection(pool, self._timeout, self._begin, self.stats, self._lean, self._watch,
                                self._pooled and pool is self.primary)

    async def reader(self) -> PooledConnection:
        if self.replica is not None:
            if await self.replica.caught_up():
                self.stats.replica_reads += 1
                return self._lend(self.replica.pool)
            self.stats.replica_behind_reads += 1
        return self.connection()
