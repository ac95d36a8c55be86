"""argon2id password hashing, off the event loop with bounded concurrency.

Parameters follow OWASP's argon2id minimum (19 MiB, t=2, p=1). Hashing takes tens of ms of CPU,
so it runs in a small thread pool (argon2 releases the GIL); the pool size bounds how many hashes
run at once. Admission is bounded too: beyond `threads + queue` hashes admitted and not finished,
a login or registration is refused at once (503, Retry-After) instead of queueing work that every
later login would wait behind until it timed out.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from service.errors import HASHING_BUSY, ServiceUnavailable

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
T = TypeVar("T")


class Passwords:
    def __init__(self, threads: int, queue: int, niceness: int = 10) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2",
                                        initializer=_lower_priority, initargs=(niceness,))
        self._limit = threads + queue
        self._admitted = 0
        # Verified against when the user does not exist, so an unknown username takes as long
        # as a wrong password and logins do not reveal which usernames are registered.
        self._dummy = HASHER.hash("not-a-real-password")

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._admitted >= self._limit:
            raise ServiceUnavailable(message=HASHING_BUSY)
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._admitted -= 1

    async def hash(self, password: str) -> str:
        return await self._run(HASHER.hash, password)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """(matches, new_hash): new_hash is set when the stored hash uses outdated parameters."""
        return await self._run(_verify, stored or self._dummy, password, stored is not None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority(niceness: int) -> None:
    """Hashing threads yield the CPU to everything else: a login flood then slows logins, not
    the event loop, Redis and PostgreSQL (whose delayed replies would open the cache breaker)."""
    try:
        thread = threading.get_native_id()
        lower = min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness)
        os.setpriority(os.PRIO_PROCESS, thread, lower)
    except OSError:  # not permitted here: hashing keeps the normal priority
        pass


def _verify(stored: str, password: str, real: bool) -> tuple[bool, str | None]:
    try:
        HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if not real:
        return False, None
    return True, HASHER.hash(password) if HASHER.check_needs_rehash(stored) else None
