"""Per-tag generations shared by the workers of one service on one host, through a small file
mapped into each (MAP_SHARED: a store by one process is seen by the others at once).

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


class SharedGenerations:
    def __init__(self, path: Path, slots: int = SLOTS) -> None:
        assert slots & (slots - 1) == 0, "a power of two"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < slots * 8:  # the first worker to open it sizes it (zeros)
                os.ftruncate(fd, slots * 8)
            self._map = mmap.mmap(fd, slots * 8)
        finally:
            os.close(fd)
        self._slots = memoryview(self._map).cast("Q")
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
