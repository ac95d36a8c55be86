import asyncio

from service.cache.client import Breaker
from service.cache.singleflight import SingleFlight


def test_singleflight_shares_one_call() -> None:
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    async def main() -> list[int]:
        sf: SingleFlight[int] = SingleFlight()
        return await asyncio.gather(*(sf.do("k", work) for _ in range(20)))

    assert asyncio.run(main()) == [42] * 20
    assert calls == 1


def test_singleflight_off_calls_each_time() -> None:
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 1

    async def main() -> None:
        sf: SingleFlight[int] = SingleFlight(enabled=False)
        await asyncio.gather(*(sf.do("k", work) for _ in range(5)))

    asyncio.run(main())
    assert calls == 5


def test_singleflight_survives_leader_cancel() -> None:
    async def work() -> int:
        await asyncio.sleep(0.05)
        return 7

    async def main() -> int:
        sf: SingleFlight[int] = SingleFlight()
        leader = asyncio.create_task(sf.do("k", work))
        await asyncio.sleep(0)
        follower = asyncio.create_task(sf.do("k", work))
        await asyncio.sleep(0.01)
        leader.cancel()
        return await follower

    assert asyncio.run(main()) == 7


def test_a_cancelled_leader_leaves_one_waiter_to_run_it_again() -> None:
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return calls

    async def main() -> tuple[list[int], int]:
        sf: SingleFlight[int] = SingleFlight()
        leader = asyncio.create_task(sf.do("k", work))
        await asyncio.sleep(0)
        waiters = [asyncio.create_task(sf.do("k", work)) for _ in range(3)]
        await asyncio.sleep(0.01)
        leader.cancel()
        results = await asyncio.gather(*waiters)
        return results, len(sf)

    results, left = asyncio.run(main())
    assert results == [2, 2, 2] and calls == 2 and left == 0  # one run more, shared by all three


def test_a_cancelled_waiter_cancels_nothing_for_the_others() -> None:
    async def work() -> int:
        await asyncio.sleep(0.05)
        return 5

    async def main() -> list[object]:
        sf: SingleFlight[int] = SingleFlight()
        leader = asyncio.create_task(sf.do("k", work))
        await asyncio.sleep(0)
        quitter, stayer = (asyncio.create_task(sf.do("k", work)) for _ in range(2))
        await asyncio.sleep(0.01)
        quitter.cancel()
        return list(await asyncio.gather(leader, quitter, stayer, return_exceptions=True))

    leader, quitter, stayer = asyncio.run(main())
    assert leader == 5 and stayer == 5 and isinstance(quitter, asyncio.CancelledError)


def test_singleflight_propagates_errors_and_forgets() -> None:
    async def boom() -> int:
        raise ValueError("x")

    async def main() -> bool:
        sf: SingleFlight[int] = SingleFlight()
        results = await asyncio.gather(sf.do("k", boom), sf.do("k", boom), return_exceptions=True)
        return all(isinstance(r, ValueError) for r in results) and len(sf) == 0

    assert asyncio.run(main())


def test_breaker_opens_and_probes() -> None:
    b = Breaker(failures=2, reset_seconds=0.05)
    assert b.allow()
    b.failure()
    assert b.allow()
    b.failure()
    assert b.open and not b.allow()
    import time

    time.sleep(0.06)
    assert b.allow()  # one probe
    assert not b.allow()
    b.success()
    assert b.allow() and not b.open


def test_a_connection_closed_under_a_write_is_the_cache_away_and_a_bug_is_not() -> None:
    """redis-py writing to a connection a restarting Redis Cluster master closed fails with a bare
    RuntimeError (uvloop) or AttributeError (its writer gone) from its write path: a CacheDown
    (bypass), counted by the breaker. The same errors from anywhere else are bugs."""
    import asyncio

    import pytest
    from redis.asyncio.connection import AbstractConnection

    from service.cache.client import Breaker
    from service.cache.guard import CacheDown, Guard

    class Lost(AbstractConnection):
        def __init__(self) -> None:  # no socket: the write fails as when the peer went away
            self._writer = None

        def repr_pieces(self) -> list[tuple[str, object]]:
            return []

        async def _connect(self) -> None:
            raise AssertionError("not connecting")

    async def write() -> None:
        await Lost()._send_packed_command([b"PING"])  # type: ignore[abstract]  # AttributeError: None has no writelines

    async def bug(exc: Exception) -> None:
        raise exc

    guard = Guard(Breaker(1, 60))
    with pytest.raises(CacheDown):
        asyncio.run(guard(write()))
    assert not guard.breaker.allow()  # counted: one failure opens this breaker
    for exc in (RuntimeError("the handler is closed"), AttributeError("x")):
        with pytest.raises(type(exc)):
            asyncio.run(Guard(Breaker(1, 60))(bug(exc)))
