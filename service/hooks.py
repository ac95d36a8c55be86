"""Benchmark and test hooks (settings.Hooks), laid over a worker's timeline and cache from outside:
nothing of them is in the timeline's code or constructor, and with every hook at 0 nothing is
laid over at all.

- SLOWDOWN_*_US: busy CPU work per request on one path (hit, miss, bypass, post), so that the CI
  performance check can be shown to catch a slower path (bench/detect.py). Always 0 in real use.
- FAULT_POST_CACHE_DELAY_MS: a wait between a post's commit and its cache update (tests of what a
  search sees meanwhile, and of a worker killed in that window)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from service.validate import NewTweet, SearchQuery

if TYPE_CHECKING:
    from service.cache.tags import Posted, TagCache
    from service.security.tokens import Identity
    from service.settings import Hooks
    from service.timeline import Timeline


def burn(microseconds: int) -> None:
    """Busy CPU work (not sleep), so the event loop is held as by slower code."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def apply_hooks(hooks: Hooks, timeline: Timeline, cache: TagCache | None) -> None:
    """Lay the hooks that are on over this worker's timeline and cache."""
    slow = {"HIT": hooks.slowdown_hit_us, "MISS": hooks.slowdown_miss_us, "BYPASS": hooks.slowdown_bypass_us}
    if any(slow.values()):
        search, cached_page = timeline.search, timeline.cached_page

        async def slowed_search(q: SearchQuery) -> tuple[bytes, str]:
            body, state = await search(q)
            burn(slow[state])
            return body, state

        def slowed_page(q: SearchQuery, now: float) -> bytes | None:
            body = cached_page(q, now)
            if body is not None:
                burn(slow["HIT"])
            return body

        timeline.search, timeline.cached_page = slowed_search, slowed_page  # type: ignore[method-assign]
    if hooks.slowdown_post_us:
        post = timeline.post_unshielded

        async def slowed_post(user: Identity, new: NewTweet) -> bytes:
            burn(hooks.slowdown_post_us)
            return await post(user, new)

        timeline.post_unshielded = slowed_post  # type: ignore[method-assign]
    if hooks.fault_post_cache_delay_ms and cache is not None:
        add_many = cache.add_many

        async def late_add_many(posts: Sequence[Posted], ask: str = "", group: str = "") -> int:
            await asyncio.sleep(hooks.fault_post_cache_delay_ms / 1000)
            return await add_many(posts, ask, group)

        cache.add_many = late_add_many  # type: ignore[method-assign]
