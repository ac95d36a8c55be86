"""In-process cache of whole search responses, kept coherent by Redis pub/sub invalidation.

Each worker keeps the bytes of recent search responses for a short TTL. Every post publishes
its tags (space-separated: tags are word characters) on `{prefix}:inv`, inside the Redis script
that updates the shared entries; every worker drops its local pages for those tags when the
message arrives (service/cache/feed.py). The posting worker drops its own before answering, so
the next search on the same connection sees the tweet.

Safety: pages are served only while the feed vouches for them (`live_until`, pushed forward by
every message and heartbeat the feed receives). When the feed goes quiet, drops or resubscribes,
the pages are cleared and bypassed, since invalidations sent meanwhile may be lost. A page read
before an invalidation is not stored after it (a per-tag generation is checked), so a slow read
cannot reinstate stale bytes. Memory is bounded in bytes (keys and bodies), oldest out first, in
batches (EVICT_SHARE).
"""

from __future__ import annotations

import time

from service.cache.generations import SharedGenerations

PageKey = tuple[str, int, int, int | None]  # tag, page, page_size, before_id
ENTRY_OVERHEAD = 300  # bytes per entry besides the body: key tuple, dict slots, its tag's key index
# A full cache frees 1/EVICT_SHARE of its bound at once: finding the oldest walks the dict's order from
# its start, past the slots of every page dropped before (a dict keeps them until it resizes), so
# one walk a batch, not one a put (measured: a put at 40k pages took 9.2 us one by one, 1.8 in batches).
EVICT_SHARE = 64
MAX_GENERATIONS = 100_000  # per-tag generation counters kept before starting a new epoch


def footprint(tag: str, body: bytes) -> int:
    """What one page counts against the bound: its body, its tag and ENTRY_OVERHEAD."""
    return len(body) + len(tag) + ENTRY_OVERHEAD


class LocalCache:
    def __init__(self, ttl: float, max_bytes: int, shared: SharedGenerations | None = None) -> None:
        self.ttl = ttl
        self.shared = shared  # the workers' shared per-tag generations (generations.py)
        self._slots = shared.slots if shared is not None else None
        self.max_bytes = max_bytes
        self.live_until = 0.0  # monotonic time until which the feed vouches for the pages
        self.bytes = 0
        # expiry, body, and the tag's shared generation when it was read, and its slot
        self._pages: dict[PageKey, tuple[float, bytes, int, int]] = {}
        # A tag's keys as a dict (an ordered set), not a set: a dict of tuples of strings and numbers
        # leaves the garbage collector's lists, where a set per tag (tens of thousands under a churn
        # of cold tags) made every full collection walk them all, a pause for every request.
        self._by_tag: dict[str, dict[PageKey, None]] = {}
        self._generation: dict[str, int] = {}
        self._epoch = 0

    @property
    def active(self) -> bool:
        return time.monotonic() < self.live_until

    @active.setter
    def active(self, value: bool) -> None:
        self.live_until = float("inf") if value else 0.0

    def get(self, key: PageKey, now: float) -> bytes | None:
        """The page, if kept and still good at `now` (time.monotonic(), read once by the caller)."""
        if now >= self.live_until:
            return None
        hit = self._pages.get(key)
        if hit is None:
            return None
        slots = self._slots
        if hit[0] < now or (slots is not None and slots[hit[3]] != hit[2]):
            self._drop(key)  # expired, or a worker has posted to the tag since it was read
            return None
        return hit[1]

    def token(self, tag: str) -> tuple[int, int, int]:
        """Taken before reading the shared cache; put() refuses if an invalidation came since."""
        shared = self.shared.of(tag) if self.shared is not None else 0
        return self._epoch, self._generation.get(tag, 0), shared

    def put(self, key: PageKey, body: bytes, token: tuple[int, int, int]) -> None:
        tag = key[0]
        if not self.active or token != self.token(tag):
            return
        size = footprint(tag, body)
        if size > self.max_bytes:
            return
        self._drop(key)
        if self.bytes + size > self.max_bytes:
            self._evict(self.bytes + size - self.max_bytes, self.max_bytes // EVICT_SHARE)
        slot = self.shared.slot(tag) if self.shared is not None else 0
        self._pages[key] = (time.monotonic() + self.ttl, body, token[2], slot)
        self.bytes += size
        self._by_tag.setdefault(tag, {})[key] = None

    def posted(self, tags: list[str]) -> None:
        """This worker's post to these tags, its cache update done: dropped here, and every
        sibling's pages of them stop being served now (before the feed's message reaches them)."""
        for tag in tags:
            self.invalidate(tag)
        if self.shared is not None:
            self.shared.bump(tags)

    def invalidate(self, tag: str) -> None:
        self._generation[tag] = self._generation.get(tag, 0) + 1
        for key in list(self._by_tag.get(tag, ())):
            self._drop(key)
        if len(self._generation) > MAX_GENERATIONS:  # forget old generations; bump the epoch instead
            self.clear()

    def clear(self) -> None:
        self._epoch += 1
        self._pages.clear()
        self._by_tag.clear()
        self.bytes = 0
        self._generation.clear()

    def _evict(self, need: int, slack: int) -> None:
        """The oldest pages out (dicts keep insertion order): `need` bytes, and up to `slack` more."""
        victims, freed = [], 0
        for key, entry in self._pages.items():
            size = footprint(key[0], entry[1])
            if freed >= need and freed + size > need + slack:
                break
            victims.append(key)
            freed += size
        for key in victims:
            self._drop(key)

    def _drop(self, key: PageKey) -> None:
        entry = self._pages.pop(key, None)
        if entry is None:
            return
        self.bytes -= footprint(key[0], entry[1])
        keys = self._by_tag.get(key[0])
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_tag[key[0]]

    def __len__(self) -> int:
        return len(self._pages)
