"""Posts written together when they arrive together.

A post goes to PostgreSQL at once, in its own statement, while fewer than `slots` post statements
of this worker are running. The posts that arrive while all are running wait, and the next slot
to free takes up to `batch_max` of them in one statement (tweets.POST_MANY): one round trip, one
plan, one transaction and one WAL flush for all, where each post alone pays each of these. Under
load that is most of what PostgreSQL and asyncpg spend on a post; at low load nothing waits.

Every post of a batch commits or none does, before any of them is answered. A batch PostgreSQL
refuses (a user deleted since its token was signed) is written again post by post, so only the
post at fault fails. A batch whose connection is lost after it was sent leaves each of
its posts' outcome unknown (WriteUnknown), as a single post's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from service.db import Conn, tweets
from service.db.database import Database
from service.db.pool import outcome_unknown, unavailable

T = TypeVar("T")


class WriteUnknown(Exception):
    """The statement was sent and the connection lost: it may or may not have committed."""


Post = tuple[int, str, str, list[str]]  # user id, username, msg, tags (as tweets.post_many takes them)


@dataclass(slots=True)
class Waiting:
    post: Post
    future: asyncio.Future[asyncpg.Record]


class Posts:
    def __init__(self, db: Database, batch_max: int, slots: int) -> None:
        self._db = db
        self._batch_max = batch_max  # 1: every post alone (the ablation)
        self._slots = slots
        self._running = 0
        self._waiting: deque[Waiting] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self.batched = 0  # posts written in a statement with others (/metrics)

    async def write(self, user_id: int, username: str, msg: str, tags: list[str]) -> asyncpg.Record:
        """The new tweet's id, created_at and JSON (body). Raises WriteUnknown, or what writing it
        raised (asyncpg.ForeignKeyViolationError: the user is gone)."""
        if self._running < self._slots or self._batch_max <= 1:
            self._running += 1
            try:
                return await self._one((user_id, username, msg, tags))
            finally:
                self._running -= 1
                self._next()
        future: asyncio.Future[asyncpg.Record] = asyncio.get_running_loop().create_future()
        self._waiting.append(Waiting((user_id, username, msg, tags), future))
        return await future

    def _next(self) -> None:
        """A slot is free: the posts waiting go, together."""
        while self._waiting and self._running < self._slots:
            batch = [self._waiting.popleft() for _ in range(min(self._batch_max, len(self._waiting)))]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _batch(self, batch: list[Waiting]) -> None:
        try:
            if len(batch) == 1:
                await self._settle(batch[0], self._one(batch[0].post))
                return
            try:
                rows = await self._many(batch)
            except asyncpg.PostgresError as exc:
                if unavailable(exc):  # too slow, shutting down: as for one post
                    _fail(batch, exc)
                else:  # refused and rolled back because of one post (its user gone): each alone
                    for w in batch:
                        await self._settle(w, self._one(w.post))
                return
            except Exception as exc:
                _fail(batch, exc)
                return
            self.batched += len(batch)
            for w, row in zip(batch, rows, strict=True):
                w.future.set_result(row)
        finally:
            for w in batch:  # whatever happened, nobody waits for ever
                if not w.future.done():
                    w.future.set_exception(RuntimeError("post batch ended without an answer"))
            self._running -= 1
            self._next()

    @staticmethod
    async def _settle(w: Waiting, write: Awaitable[asyncpg.Record]) -> None:
        try:
            w.future.set_result(await write)
        except Exception as exc:
            w.future.set_exception(exc)

    async def _one(self, post: Post) -> asyncpg.Record:
        return await self._sent(lambda conn: tweets.post(conn, *post))

    async def _many(self, batch: list[Waiting]) -> list[asyncpg.Record]:
        posts = [w.post for w in batch]
        return await self._sent(lambda conn: tweets.post_many(conn, posts))

    async def _sent(self, write: Callable[[Conn], Awaitable[T]]) -> T:
        """write(a pooled connection); a lost connection after it was sent is WriteUnknown."""
        sent = False
        try:
            async with self._db.connection() as conn:
                sent = True  # from here a lost connection may follow the commit
                return await write(conn)
        except Exception as exc:
            if sent and outcome_unknown(exc):
                raise WriteUnknown(repr(exc)) from exc
            raise


def _fail(batch: list[Waiting], exc: BaseException) -> None:
    for w in batch:
        if not w.future.done():
            w.future.set_exception(exc)
