"""argon2id password hashing, off the event loop with bounded concurrency.

Parameters follow OWASP's argon2id minimum (19 MiB, t=2, p=1). Hashing takes tens of ms of CPU,
so it runs in a small thread pool (argon2 releases the GIL); the pool size bounds how many hashes
run at once, so a login burst queues instead of exhausting memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class Passwords:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        # Verified against when the user does not exist, so an unknown username takes as long
        # as a wrong password and logins do not reveal which usernames are registered.
        self._dummy = HASHER.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, HASHER.hash, password)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """(matches, new_hash): new_hash is set when the stored hash uses outdated parameters."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, _verify, stored or self._dummy, password, stored is not None
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _verify(stored: str, password: str, real: bool) -> tuple[bool, str | None]:
    try:
        HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if not real:
        return False, None
    return True, HASHER.hash(password) if HASHER.check_needs_rehash(stored) else None
