"""Automatic pipelining: Redis commands issued by concurrent requests in the same event-loop
tick travel together as one redis-py pipeline (one round trip, one client-side execution).

redis-py spends far more CPU per call (pool checkout, connection checks, retries) than Redis
spends answering it; sharing that cost across a batch is what makes a cache round trip cheap
under load. With one request in flight a batch holds one request, so nothing waits longer
than the current tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis


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
