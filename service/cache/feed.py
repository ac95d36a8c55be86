"""The invalidation feed: one pub/sub subscription per worker that keeps its caches honest.

It applies invalidations to the in-process pages, and it notices when it can no longer vouch
for what the caches hold:
- quiet: no message or heartbeat reply for `stale_after` seconds (Redis frozen, or a network
  cut that TCP has not reported yet). The pages stop being served at once. `stale_after` is
  below the Redis socket timeout, so no post can have been acknowledged without its cache
  update (that takes a timed-out Redis call) before this worker stopped trusting its pages;
- broken or resubscribed (redis-py reconnects by itself): messages sent meanwhile are lost;
- moved: the Redis server answering is not the one this prefix's data was written on (restarted
  from a snapshot, a replica promoted), so the shared entries may be old.
In the first two cases the worker is told when it last heard the feed (`on_lost`): it bypasses
the shared cache and invalidates every tag posted to since then before using it again. In the
third (`on_moved`) it drops every shared entry first. Either way the pages kept in process are
cleared when the feed comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis.asyncio as redis

from service.cache.local import LocalCache
from service.cache.tags import TagCache

log = logging.getLogger(__name__)


class Feed:
    def __init__(self, client: redis.Redis, cache: TagCache, local: LocalCache | None, *,
                 ping_interval: float, stale_after: float, retry_seconds: float,
                 on_lost: Callable[[datetime], None],
                 on_moved: Callable[[str], None], on_back: Callable[[], None]) -> None:
        self._client = client
        self._cache = cache
        self._local = local
        self._ping = ping_interval
        self.stale_after = stale_after
        self._retry = retry_seconds
        self._on_lost = on_lost
        self._on_moved = on_moved
        self._on_back = on_back
        self._heard_at = 0.0  # monotonic
        self._heard_wall = datetime.now(UTC)
        self._lost = True  # until the first subscription: nothing to vouch for yet
        self._back_at = 0.0  # monotonic time the feed was last (re)established

    def trusted_for(self, seconds: float) -> bool:
        """Trusted, and continuously so for at least that long."""
        return self.trusted() and time.monotonic() - self._back_at >= seconds

    def trusted(self) -> bool:
        """Whether the shared cache may be used now: subscribed, and heard from recently. Checked
        on every search, so a freeze is noticed by the first search after the deadline even
        while this task waits on a slow socket."""
        if self._lost:
            return False
        if time.monotonic() - self._heard_at > self.stale_after:
            self._lose(f"quiet for more than {self.stale_after} s")
            return False
        return True

    async def run(self) -> None:
        """For the worker's lifetime: re-subscribes after any failure."""
        try:
            while True:
                # Subscribe confirmations are kept: redis-py reconnects a broken pub/sub
                # connection by itself and subscribes again without raising.
                pubsub = self._client.pubsub(ignore_subscribe_messages=False)
                try:
                    await pubsub.subscribe(self._cache.channel)
                    await self._listen(pubsub)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._lose(f"lost ({exc!r})")
                    await asyncio.sleep(self._retry)
                finally:
                    try:  # bounded: a broken connection must not hold the worker's shutdown
                        await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]
                    except Exception:  # noqa: S110 (the connection is already broken)
                        pass
        finally:
            self._silence()

    async def _listen(self, pubsub: redis.client.PubSub) -> None:
        next_ping = 0.0
        while True:
            now = time.monotonic()
            if now >= next_ping:
                await pubsub.ping()
                next_ping = now + self._ping
            self.trusted()  # notices a quiet feed even when no search asks
            message = await pubsub.get_message(timeout=self._ping)
            if message is None:
                continue
            kind = message["type"]
            if kind == "subscribe" and not self._lost:
                self._lose("resubscribed")  # redis-py reconnected by itself: messages were lost
            if self._lost:
                await self._recover()
            elif kind == "message" and self._local is not None:
                data = message["data"]
                for tag in (data.decode() if isinstance(data, bytes) else str(data)).split():
                    self._local.invalidate(tag)
            self._hear()

    async def _recover(self) -> None:
        """Heard again after a loss: whatever happened meanwhile is unknown."""
        current, recorded = await self._cache.runs()
        if recorded is None:
            await self._cache.record_run(current)
        elif recorded != current:
            log.warning("Redis run changed (%s -> %s): cached entries may be old", recorded, current)
            self._on_moved(current)
        if self._local is not None:
            self._local.clear()
        self._lost = False
        self._back_at = time.monotonic()
        self._on_back()
        log.info("cache invalidation feed back")

    def _hear(self) -> None:
        self._heard_at = time.monotonic()
        if not self._lost:
            self._heard_wall = datetime.now(UTC)
            if self._local is not None:
                self._local.live_until = self._heard_at + self.stale_after

    def _silence(self) -> None:
        if self._local is not None:
            self._local.active = False
            self._local.clear()

    def _lose(self, why: str) -> None:
        self._silence()
        if not self._lost:
            log.warning("cache invalidation feed %s; caches bypassed until it is back", why)
            self._lost = True
            self._on_lost(self._heard_wall)
