"""Together (service/cache/batch.py): what is handed in during one tick goes as one call."""

import asyncio

import pytest

from service.cache.batch import Together


def test_one_tick_is_one_call_bounded_by_the_limit_and_the_next_tick_another() -> None:
    calls: list[list[int]] = []

    async def run(items: list[int]) -> None:
        calls.append(items)
        await asyncio.sleep(0.01)

    async def main() -> None:
        together = Together(run, limit=4)
        await asyncio.gather(*(together(i) for i in range(6)))  # one tick: 4, then the other 2
        await together(6)

    asyncio.run(main())
    assert calls == [[0, 1, 2, 3], [4, 5], [6]]


def test_a_failed_call_fails_each_of_its_callers_and_not_the_next() -> None:
    async def run(items: list[int]) -> None:
        if 0 in items:
            raise ConnectionError("refused")

    async def main() -> list[BaseException | None]:
        together = Together(run, limit=64)
        first = await asyncio.gather(together(0), together(1), return_exceptions=True)
        await together(2)  # raises if it failed too
        return list(first)

    assert [type(e) for e in asyncio.run(main())] == [ConnectionError, ConnectionError]


def test_a_caller_cancelled_cancels_nobody_else() -> None:
    async def run(items: list[int]) -> None:
        await asyncio.sleep(0.05)

    async def main() -> bool:
        together = Together(run, limit=64)
        gone = asyncio.ensure_future(together(0))
        stays = together(1)
        await asyncio.sleep(0.01)
        gone.cancel()
        await stays  # raises if it was cancelled too
        return gone.cancelled() and stays.done()

    assert asyncio.run(main())


def test_a_cancelled_call_leaves_nobody_waiting() -> None:
    async def run(items: list[int]) -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        together = Together(run, limit=64)
        waiting = together(0)
        await asyncio.sleep(0.01)
        for task in together._tasks:
            task.cancel()
        await waiting

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
