"""Concurrent callers asking for the same key share one in-flight computation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Abandoned(Exception):
    """The caller running the computation was cancelled before it ended."""


class SingleFlight(Generic[T]):
    """The first caller of a key runs the computation itself (no task of its own: most keys have
    no second caller); callers that come while it runs wait for its result, each shielded, so one
    that goes away cancels nothing for the others. Should the first caller be cancelled (a client
    disconnect), the computation is abandoned and one of those waiting runs it again."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._calls: dict[str, asyncio.Future[T]] = {}

    async def do(self, key: str, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if not self.enabled:
            return await fn()
        while (running := self._calls.get(key)) is not None:
            try:
                return await asyncio.shield(running)
            except _Abandoned:
                continue  # the first of the waiters to get here runs it
        shared: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls[key] = shared
        try:
            result = await fn()
        except BaseException as exc:
            shared.set_exception(_Abandoned() if isinstance(exc, asyncio.CancelledError) else exc)
            shared.exception()  # retrieved: with no one waiting, asyncio would log it
            raise
        else:
            shared.set_result(result)
            return result
        finally:
            del self._calls[key]

    def __len__(self) -> int:
        return len(self._calls)
