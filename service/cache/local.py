"""In-process cache of whole search responses, kept coherent by Redis pub/sub invalidation.

Each worker keeps the bytes of recent search responses for a short TTL. Every post publishes
its tags (space-separated: tags are word characters) on `{prefix}:inv`, inside the Redis script
that updates the shared entries; every worker drops its local pages for those tags when the
message arrives. The posting worker drops
its own before answering, so the next search on the same connection sees the tweet.

Safety: the local cache is used only while the subscription is live. When it drops (Redis down,
connection lost) the cache is cleared and bypassed until re-subscribed, since invalidations
sent meanwhile were lost; every subscribe confirmation clears it too, which covers redis-py
reconnecting and re-subscribing by itself without raising. A page read before an invalidation
is not stored after it (a per-tag generation is checked), so a slow read cannot reinstate
stale bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as redis

log = logging.getLogger(__name__)

PageKey = tuple[str, int, int, int | None]  # tag, page, page_size, before_id


class LocalCache:
    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self.active = False  # True only while the invalidation subscription is live
        self._pages: dict[PageKey, tuple[float, bytes]] = {}
        self._by_tag: dict[str, set[PageKey]] = {}
        self._generation: dict[str, int] = {}
        self._epoch = 0

    def get(self, key: PageKey) -> bytes | None:
        if not self.active:
            return None
        hit = self._pages.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._drop(key)
            return None
        return hit[1]

    def token(self, tag: str) -> tuple[int, int]:
        """Taken before reading the shared cache; put() refuses if an invalidation came since."""
        return self._epoch, self._generation.get(tag, 0)

    def put(self, key: PageKey, body: bytes, token: tuple[int, int]) -> None:
        tag = key[0]
        if not self.active or token != (self._epoch, self._generation.get(tag, 0)):
            return
        if len(self._pages) >= self.size and key not in self._pages:
            self._drop(next(iter(self._pages)))  # oldest first
        self._pages[key] = (time.monotonic() + self.ttl, body)
        self._by_tag.setdefault(tag, set()).add(key)

    def invalidate(self, tag: str) -> None:
        self._generation[tag] = self._generation.get(tag, 0) + 1
        for key in self._by_tag.pop(tag, ()):
            self._pages.pop(key, None)
        if len(self._generation) > 4 * self.size:  # forget old generations; bump the epoch instead
            self.clear()

    def clear(self) -> None:
        self._epoch += 1
        self._pages.clear()
        self._by_tag.clear()
        self._generation.clear()

    def _drop(self, key: PageKey) -> None:
        self._pages.pop(key, None)
        keys = self._by_tag.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_tag[key[0]]

    def __len__(self) -> int:
        return len(self._pages)


async def listen(client: redis.Redis, channel: str, local: LocalCache, retry_seconds: float) -> None:
    """Run for the worker's lifetime: apply invalidations; re-subscribe after any failure."""
    while True:
        # Subscribe confirmations are kept: redis-py reconnects a broken pub/sub connection by
        # itself and subscribes again, without raising, and messages sent while it was cut are
        # lost. Each confirmation (the first and every later one) drops the pages kept so far.
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            await pubsub.subscribe(channel)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    local.clear()  # whatever happened while we were not listening is unknown
                    local.active = True
                elif message["type"] == "message":
                    data = message["data"]
                    for tag in (data.decode() if isinstance(data, bytes) else str(data)).split():
                        local.invalidate(tag)
        except asyncio.CancelledError:
            local.active = False
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        except Exception as exc:
            local.active = False
            local.clear()
            log.warning("cache invalidation feed lost (%r); local cache off until it is back", exc)
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except Exception:  # noqa: S110 (the connection is already broken)
                pass
            await asyncio.sleep(retry_seconds)
