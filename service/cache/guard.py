"""Whether the request path may use Redis now, and every Redis call it makes counted.

The circuit breaker (service/cache/client.py) and the invalidation feed (service/cache/feed.py)
behind one object, so the timeline asks questions instead of driving the breaker's protocol.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

from service.cache.client import Breaker, cache_error
from service.cache.feed import Feed
from service.cache.notices import Notices

T = TypeVar("T")


class CacheDown(Exception):
    """A cache call failed (Redis slow, gone or restarting); the breaker has counted it."""


class Guard:
    def __init__(self, breaker: Breaker, feed: Feed | None = None, notices: Notices | None = None) -> None:
        self.breaker = breaker
        self._feed = feed
        self._notices = notices

    async def __call__(self, call: Awaitable[T]) -> T:
        """Await one cache call: a success closes the breaker, a failure counts towards opening it
        and is raised as CacheDown."""
        try:
            result = await call
        except Exception as exc:
            if not cache_error(exc):
                raise
            self.breaker.failure()
            raise CacheDown(repr(exc)) from exc
        self.breaker.success()
        return result

    def feed_trusted(self) -> bool:
        """No other worker's post can be missing from this worker's view of the cache: the Redis feed,
        and the database notices (a post whose instance could not reach Redis), both heard."""
        feed, notices = self._feed, self._notices
        return (feed is None or feed.trusted()) and (notices is None or notices.trusted())

    def readable(self) -> bool:
        """Pages may come from the cache: the feed vouches for it and the breaker lets calls through."""
        return self.readable_at(time.monotonic())

    def readable_at(self, now: float) -> bool:
        """readable(), at `now` (time.monotonic(), read once for a whole request by the caller): the
        same checks in fewer calls, as every cached page the front answers makes them."""
        feed, notices = self._feed, self._notices
        return ((feed is None or feed.trusted_at(now)) and (notices is None or notices.trusted_at(now))
                and self.breaker.allow())

    def updatable(self) -> bool:
        """A post should try its cache update. Skipped only when both say Redis is away: a post
        acknowledged without its update while other workers already read the cache again would be
        missing from their pages until this worker's repair."""
        return self.breaker.allow() or self.feed_trusted()

    def settled(self) -> bool:
        """Redis has been back long enough to repair: the feed has heard it for a full stale period,
        so every other worker has heard it too and updates the cache on each post again."""
        return self.breaker.allow() and (self._feed is None or self._feed.trusted_for(self._feed.stale_after))
