import time

from service.cache.local import LocalCache


def active(ttl: float = 10, size: int = 100) -> LocalCache:
    c = LocalCache(ttl, size)
    c.active = True
    return c


def test_get_put_and_invalidate() -> None:
    c = active()
    key = ("python", 1, 10, None)
    c.put(key, b"page", c.token("python"))
    c.put(("python", 2, 10, None), b"page2", c.token("python"))
    c.put(("other", 1, 10, None), b"x", c.token("other"))
    assert c.get(key) == b"page"
    c.invalidate("python")
    assert c.get(key) is None and c.get(("python", 2, 10, None)) is None
    assert c.get(("other", 1, 10, None)) == b"x"


def test_put_refused_after_invalidation_during_read() -> None:
    c = active()
    token = c.token("t")          # read of the shared cache starts
    c.invalidate("t")             # a post lands meanwhile
    c.put(("t", 1, 10, None), b"stale", token)
    assert c.get(("t", 1, 10, None)) is None


def test_put_refused_after_clear_during_read() -> None:
    c = active()
    token = c.token("t")
    c.clear()
    c.put(("t", 1, 10, None), b"stale", token)
    assert c.get(("t", 1, 10, None)) is None


def test_inactive_cache_neither_serves_nor_stores() -> None:
    c = active()
    c.put(("t", 1, 10, None), b"x", c.token("t"))
    c.active = False
    assert c.get(("t", 1, 10, None)) is None
    c.put(("u", 1, 10, None), b"y", c.token("u"))
    c.active = True
    assert c.get(("u", 1, 10, None)) is None


def test_ttl_expires() -> None:
    c = active(ttl=0.05)
    c.put(("t", 1, 10, None), b"x", c.token("t"))
    time.sleep(0.06)
    assert c.get(("t", 1, 10, None)) is None and len(c) == 0


def test_bounded_size() -> None:
    c = active(size=3)
    for i in range(10):
        c.put((f"t{i}", 1, 10, None), b"x", c.token(f"t{i}"))
    assert len(c) == 3
    assert c.get(("t9", 1, 10, None)) == b"x" and c.get(("t0", 1, 10, None)) is None
