import asyncio

import pytest

from service.errors import ServiceUnavailable
from service.security.passwords import Passwords


def test_excess_hashing_is_refused_at_once_and_admission_recovers() -> None:
    passwords = Passwords(threads=1, queue=1)

    async def flood() -> list[object]:
        return await asyncio.gather(*(passwords.hash(f"password {i}") for i in range(4)),
                                    return_exceptions=True)

    try:
        results = asyncio.run(flood())
        refused = [r for r in results if isinstance(r, ServiceUnavailable)]
        hashed = [r for r in results if isinstance(r, str)]
        assert len(hashed) == 2 and len(refused) == 2  # 1 thread + 1 waiting admitted, the rest shed
        ok, _ = asyncio.run(passwords.verify(hashed[0], "password 0"))  # admission is free again
        assert ok
    finally:
        passwords.close()


def test_a_refusal_carries_retry_after() -> None:
    passwords = Passwords(threads=1, queue=0)

    async def two() -> None:
        first = asyncio.ensure_future(passwords.hash("first password"))
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailable) as refused:
            await passwords.hash("second password")
        assert refused.value.retry_after >= 1 and refused.value.status == 503
        await first

    try:
        asyncio.run(two())
    finally:
        passwords.close()


def test_hashing_threads_run_at_a_lower_priority() -> None:
    import os
    import threading

    passwords = Passwords(threads=1, queue=0, niceness=10)

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def inside() -> int:
        return await passwords._run(niceness)

    try:
        assert asyncio.run(inside()) == min(19, niceness() + 10)
    finally:
        passwords.close()
