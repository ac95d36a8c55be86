"""Concurrent callers asking for the same key share one in-flight computation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """The computation runs as its own task, so a caller that goes away (client disconnect,
    cancelled handler) does not cancel it for the others waiting on the same key."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._calls: dict[str, asyncio.Task[T]] = {}

    async def do(self, key: str, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if not self.enabled:
            return await fn()
        task = self._calls.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(fn())
            self._calls[key] = task
            task.add_done_callback(lambda _: self._calls.pop(key, None))
        return await asyncio.shield(task)

    def __len__(self) -> int:
        return len(self._calls)
