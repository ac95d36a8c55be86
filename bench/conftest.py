"""Fixtures for the microbenchmarks: the bench stack (real PostgreSQL and Redis, seeded) and
one long-lived uvloop event loop that every async benchmark runs on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

from bench.harness import bench_settings, prepare_stack
from ops import stack

OPS = 50  # awaits per benchmark round: the loop's own overhead is paid once per round
QUICK = os.environ.get("BENCH_QUICK") == "1"


@pytest.fixture(scope="session")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def urls() -> tuple[str, str]:
    prepare_stack()
    return stack.urls(bench_settings())


@pytest.fixture
def run_async(benchmark: Any, loop: asyncio.AbstractEventLoop) -> Callable[..., None]:
    """Benchmark an async operation: each round awaits it OPS times on the shared loop."""

    def go(op: Callable[[], Awaitable[Any]], rounds: int = 30) -> None:
        async def batch() -> None:
            for _ in range(OPS):
                await op()

        loop.run_until_complete(batch())  # warm-up
        benchmark.extra_info["ops_per_round"] = OPS
        rounds = max(3, rounds // 4) if QUICK else rounds
        benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=rounds, iterations=1)

    return go
