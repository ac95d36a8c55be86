"""The chaos run's steady periods: drawn out until the phase has enough evidence, and bounded."""

from __future__ import annotations

import asyncio
import time

from bench.chaos.faults import steady_load
from bench.chaos.load import MIN_SUCCESSES, Load, Phase, Read, Write


async def trickle(load: Load, every: float, writes_acked: bool = True) -> None:
    """One write and one read recorded every `every` seconds, as a slow service would answer them."""
    n = 0
    while True:
        n += 1
        now = time.monotonic()
        load.writes.append(Write(0, f"m{n}", ["t"], now, now, "acked" if writes_acked else "unavailable"))
        load.reads.append(Read("t", now, now, "200"))
        await asyncio.sleep(every)


async def steady(every: float, seconds: float, limit: float, writes_acked: bool = True) -> tuple[float, Load]:
    load = Load("http://127.0.0.1:1", "t")
    load.writes.append(Write(0, "before", ["t"], time.monotonic() - 5, outcome="acked"))  # an earlier phase's
    phase = Phase("steady", time.monotonic())
    feeding = asyncio.create_task(trickle(load, every, writes_acked))
    began = time.monotonic()
    await steady_load(seconds, phase, load, limit=limit)
    feeding.cancel()
    return time.monotonic() - began, load


def test_a_steady_period_lasts_until_the_phase_has_enough_successes() -> None:
    took, load = asyncio.run(steady(every=0.02, seconds=0.05, limit=10.0))
    assert (MIN_SUCCESSES - 1) * 0.02 <= took < 5.0
    assert load.enough_since(load.writes[1].start)


def test_a_steady_period_is_at_least_its_seconds_when_successes_come_fast() -> None:
    took, _ = asyncio.run(steady(every=0.001, seconds=0.3, limit=10.0))
    assert 0.3 <= took < 2.0


def test_a_steady_period_ends_at_its_limit_when_writes_keep_failing() -> None:
    took, load = asyncio.run(steady(every=0.01, seconds=0.05, limit=0.3, writes_acked=False))
    assert 0.35 <= took < 3.0
    assert not load.enough_since(load.writes[1].start)
