"""Automatic pipelining: Redis commands issued by concurrent requests in the same event-loop
tick travel together as one redis-py pipeline (one round trip, one client-side execution).

redis-py spends far more CPU per call (pool checkout, connection checks, retries) than Redis
spends answering it; sharing that cost across a batch is what makes a cache round trip cheap
under load. With one request in flight a batch holds one request, so nothing waits longer
than the current tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import redis.asyncio as redis

T = TypeVar("T")


class Batcher:
    def __init__(self, client: redis.Redis | redis.RedisCluster) -> None:
        self._client = client
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, *command: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self._queue, self._scheduled = self._queue, [], False
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for command, _ in batch:
            pipe.execute_command(*command)
        try:
            results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # connection lost, timeout: every caller in the batch fails
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class Together(Generic[T]):
    """Items handed in during one event-loop tick go to `run` as one list (at most `limit` a
    call), and each caller learns how that call ended. The posts a PostgreSQL batch answers
    resume in the same tick, so their cache updates become one call (one script, one message)."""

    def __init__(self, run: Callable[[list[T]], Awaitable[None]], limit: int) -> None:
        self._run = run
        self._limit = limit
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, item: T) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()  # one per caller: a cancelled one
        self._queue.append((item, future))                  # cancels nobody else's
        if len(self._queue) == 1:
            loop.call_soon(self._flush)
        elif len(self._queue) >= self._limit:
            self._flush()
        return future

    def _flush(self) -> None:
        if not self._queue:  # sent early, full
            return
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._run([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop closing): nobody waits for ever
            for _, future in batch:
                future.cancel()
            raise
        for _, future in batch:
            if not future.done():
                future.set_result(None)
