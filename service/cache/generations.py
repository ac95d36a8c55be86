"""State shared by the workers of one service on one host, through small files mapped into each
(MAP_SHARED: a store by one process is seen by the others at once): per-tag generations, and which
workers are dirty.

Generations:
The invalidation feed (service/cache/feed.py) tells the other workers of a post one Redis hop
after it is acknowledged; a search another client sends in that instant to another worker could
still be answered from that worker's in-process pages. So a post, once its cache update is done
and before it is acknowledged, also stores a new value in its tags' slots here; a page kept in
process remembers the slot's value it was read under and is not served once the slot has moved.
A slot is a tag's CRC-32 modulo the table size: tags sharing a slot only cost each other a page.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterable
from pathlib import Path
from zlib import crc32

SLOTS = 1 << 16  # 512 KiB of 8-byte slots


def _mapped(path: Path, words: int) -> tuple[mmap.mmap, memoryview]:
    """The file's first `words` 8-byte words, shared; the first worker to open it sizes it (zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < words * 8:
            os.ftruncate(fd, words * 8)
        shared = mmap.mmap(fd, words * 8)
    finally:
        os.close(fd)
    return shared, memoryview(shared).cast("Q")


class SharedGenerations:
    def __init__(self, path: Path, slots: int = SLOTS) -> None:
        assert slots & (slots - 1) == 0, "a power of two"
        self._map, self._slots = _mapped(path, slots)
        self._mask = slots - 1

    def slot(self, tag: str) -> int:
        return crc32(tag.encode()) & self._mask

    def of(self, tag: str) -> int:
        return int(self._slots[self.slot(tag)])

    @property
    def slots(self) -> memoryview:
        """The slots themselves: a page kept in process checks its slot on every hit."""
        return self._slots

    def bump(self, tags: Iterable[str]) -> None:
        """A new value in each tag's slot, never one it held before (two workers bumping one slot at
        once may both store theirs: either way it has moved)."""
        slots = self._slots
        for tag in tags:
            i = crc32(tag.encode()) & self._mask
            now, was = time.monotonic_ns(), slots[i]
            slots[i] = now if now > was else was + 1

    def close(self) -> None:
        self._slots.release()
        self._map.close()


class DirtyWorkers:
    """Which workers of the service are dirty (service/timeline.py: bypassing the cache until their
    repair is done): a byte each, written only by its own worker, read eight at a time.

    The workers read the same Redis entries, so a worker bypasses the cache while any of them is
    dirty: when Redis refused a post's cache update but still answers reads (a Redis Cluster's
    CLUSTERDOWN after a master restarts, a demoted master's READONLY), the sibling that took no
    failure itself would otherwise serve the entry that lacks the post. The posting worker marks its
    byte before the 201, so its sibling's next search sees it.
    """

    def __init__(self, path: Path, index: int, workers: int) -> None:
        self._map, self._words = _mapped(path, (max(workers, index + 1) + 7) // 8)
        self._bytes = memoryview(self._map)
        self._index = index
        self.set(False)  # a worker (re)started: whatever its predecessor left undone, the
        # sibling that restarted it repairs (service/app.py restart_dead_siblings)

    def set(self, dirty: bool) -> None:
        self._bytes[self._index] = int(dirty)

    def any(self) -> bool:
        """Checked on every cached search: one word read for up to eight workers."""
        words = self._words
        return words[0] != 0 or (len(words) > 1 and any(words))
