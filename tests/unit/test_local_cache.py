import gc
import itertools
import multiprocessing
import time
from pathlib import Path

from service.cache.generations import SharedGenerations
from service.cache.local import ENTRY_OVERHEAD, EVICT_SHARE, LocalCache

now = time.monotonic  # what the caller of get() reads once per request


def active(ttl: float = 10, max_bytes: int = 1 << 20) -> LocalCache:
    c = LocalCache(ttl, max_bytes)
    c.active = True
    return c


def test_get_put_and_invalidate() -> None:
    c = active()
    key = ("python", 1, 10, None)
    c.put(key, b"page", c.token("python"))
    c.put(("python", 2, 10, None), b"page2", c.token("python"))
    c.put(("other", 1, 10, None), b"x", c.token("other"))
    assert c.get(key, now()) == b"page"
    c.invalidate("python")
    assert c.get(key, now()) is None and c.get(("python", 2, 10, None), now()) is None
    assert c.get(("other", 1, 10, None), now()) == b"x"


def test_put_refused_after_invalidation_during_read() -> None:
    c = active()
    token = c.token("t")          # read of the shared cache starts
    c.invalidate("t")             # a post lands meanwhile
    c.put(("t", 1, 10, None), b"stale", token)
    assert c.get(("t", 1, 10, None), now()) is None


def test_put_refused_after_clear_during_read() -> None:
    c = active()
    token = c.token("t")
    c.clear()
    c.put(("t", 1, 10, None), b"stale", token)
    assert c.get(("t", 1, 10, None), now()) is None


def test_inactive_cache_neither_serves_nor_stores() -> None:
    c = active()
    c.put(("t", 1, 10, None), b"x", c.token("t"))
    c.active = False
    assert c.get(("t", 1, 10, None), now()) is None
    c.put(("u", 1, 10, None), b"y", c.token("u"))
    c.active = True
    assert c.get(("u", 1, 10, None), now()) is None


def test_ttl_expires() -> None:
    c = active(ttl=0.05)
    c.put(("t", 1, 10, None), b"x", c.token("t"))
    time.sleep(0.06)
    assert c.get(("t", 1, 10, None), now()) is None and len(c) == 0


def test_bounded_in_bytes_oldest_out_first() -> None:
    body = b"x" * 1000
    c = active(max_bytes=3 * (1000 + 2 + ENTRY_OVERHEAD))
    for i in range(10):
        c.put((f"t{i}", 1, 10, None), body, c.token(f"t{i}"))
    assert len(c) == 3 and c.bytes <= c.max_bytes
    assert c.get(("t9", 1, 10, None), now()) == body and c.get(("t6", 1, 10, None), now()) is None
    c.put(("big", 1, 10, None), b"y" * c.max_bytes, c.token("big"))  # larger than the bound: not kept
    assert c.get(("big", 1, 10, None), now()) is None and len(c) == 3


def test_a_full_cache_frees_a_share_of_its_bound_at_once() -> None:
    """Eviction in batches: finding the oldest page walks past every slot dropped before it, so a
    full cache must not do that walk on every put."""
    body = b"x" * 100
    size = 100 + 3 + ENTRY_OVERHEAD
    c = active(max_bytes=EVICT_SHARE * 4 * size)
    for i in range(EVICT_SHARE * 4):
        c.put((f"t{i:02x}", 1, 10, None), body, c.token(f"t{i:02x}"))
    assert c.bytes == c.max_bytes
    c.put(("new", 1, 10, None), body, c.token("new"))
    assert c.max_bytes - c.bytes >= c.max_bytes // EVICT_SHARE  # a batch out, not one page
    assert c.get(("t00", 1, 10, None), now()) is None and c.get(("new", 1, 10, None), now()) == body
    assert c.get((f"t{EVICT_SHARE * 4 - 1:02x}", 1, 10, None), now()) == body  # the newest stay


def test_pages_leave_the_garbage_collectors_lists() -> None:
    """Tens of thousands of cold tags' pages must not each add an object every full collection
    walks (a set per tag did: a pause for every request in flight)."""
    c = active(max_bytes=64 << 20)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(5000):
        c.put((f"cold{i}", 1, 10, None), b"x" * 100, c.token(f"cold{i}"))
    gc.collect()
    assert len(c) == 5000 and len(gc.get_objects()) - before < 500


def test_byte_count_follows_replacements_invalidation_and_expiry() -> None:
    c = active(ttl=0.05)
    c.put(("a", 1, 10, None), b"12345", c.token("a"))
    c.put(("a", 1, 10, None), b"1234567890", c.token("a"))  # replaced, not counted twice
    assert c.bytes == 10 + 1 + ENTRY_OVERHEAD
    c.put(("b", 2, 10, None), b"xy", c.token("b"))
    c.invalidate("a")
    assert c.bytes == 2 + 1 + ENTRY_OVERHEAD
    time.sleep(0.06)
    assert c.get(("b", 2, 10, None), now()) is None and c.bytes == 0


def test_pages_stop_being_served_when_the_feed_stops_vouching() -> None:
    c = active()
    c.put(("t", 1, 10, None), b"x", c.token("t"))
    c.live_until = time.monotonic() + 0.03
    assert c.get(("t", 1, 10, None), now()) == b"x"
    time.sleep(0.04)
    assert c.get(("t", 1, 10, None), now()) is None


def _bump_in_another_process(path: str, tag: str) -> None:
    SharedGenerations(Path(path)).bump([tag])


def test_a_post_on_one_worker_stops_anothers_page_before_any_message(tmp_path: Path) -> None:
    """Two workers' caches over one shared file: a post on one, its cache update done, and the
    other no longer serves its page of that tag, with no invalidation message received."""
    path = tmp_path / "tag-generations"
    mine, theirs = (LocalCache(60, 1 << 20, SharedGenerations(path)) for _ in range(2))
    for c in (mine, theirs):
        c.active = True
    key, other = ("t", 1, 10, None), ("u", 1, 10, None)
    theirs.put(key, b"old page", theirs.token("t"))
    theirs.put(other, b"other page", theirs.token("u"))
    assert theirs.get(key, now()) == b"old page"
    mine.posted(["t"])
    assert theirs.get(key, now()) is None and theirs.get(other, now()) == b"other page"
    # a read that began before the post may not store what it read
    token = theirs.token("t")
    mine.posted(["t"])
    theirs.put(key, b"read before the post", token)
    assert theirs.get(key, now()) is None
    # and from another process, as Sanic's workers are
    theirs.put(key, b"page", theirs.token("t"))
    spawn = multiprocessing.get_context("spawn")
    worker = spawn.Process(target=_bump_in_another_process, args=(str(path), "t"))
    worker.start()
    worker.join(30)
    assert worker.exitcode == 0 and theirs.get(key, now()) is None


def test_a_slot_never_returns_to_a_value_it_held(tmp_path: Path) -> None:
    shared = SharedGenerations(tmp_path / "g", slots=4)
    seen = [shared.of("t")]
    for _ in range(1000):
        shared.bump(["t"])
        seen.append(shared.of("t"))
    assert all(b > a for a, b in itertools.pairwise(seen))
