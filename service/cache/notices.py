"""The second invalidation channel: PostgreSQL's LISTEN/NOTIFY, for a post whose instance cannot
reach Redis while others can.

Such a post commits, but its cache update fails: the shared entries of its tags lack it, and the
Redis feed (feed.py) never carries its message. Other instances, still hearing Redis, would serve
those entries, and their in-process pages, without the post. So the post is announced through
PostgreSQL, which it just reached (`announce`: NOTIFY on the service's channel, with the post's
time and tags), and every worker listening on its own connection (`run`) marks itself dirty on
hearing it, as on a `!dirty` message of the Redis feed: it drops its pages of the tags, bypasses
the cache and, once Redis answers, invalidates every tag posted to since then before using it again
(service/timeline.py).

Nothing counts the listeners. A worker trusts its caches only while this channel vouches for it:
`trusted()` until `stale_after` past the sending of its last answered heartbeat (`SELECT 1` on the
listening connection every `ping_interval`). PostgreSQL delivers a notification that was signalled
before a query ends ahead of that query's ReadyForQuery, and asyncpg runs the listener callback
before the query's caller resumes; so a worker whose heartbeat, sent after the NOTIFY committed,
has been answered has heard it. The poster waits `stale_after` after its NOTIFY commits before
answering: by then every worker has heard it or stopped trusting its caches. Once the connection
fails, what is announced before the worker listens again is never heard: it repairs as after a
Redis outage (dirty since that last heartbeat).

The price: a worker that cannot reach PostgreSQL answers no search from its caches (it could not
answer a miss or a post either).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

DIRTY = "dirty"


class Notices:
    def __init__(self, url: str, channel: str, *, ping_interval: float, stale_after: float,
                 retry_seconds: float, connect_timeout: float,
                 on_dirty: Callable[[datetime, list[str]], None]) -> None:
        self.channel = channel
        self.stale_after = stale_after
        self._url = url
        self._ping = ping_interval
        self._retry = retry_seconds
        self._connect_timeout = connect_timeout
        self._on_dirty = on_dirty
        self._live_until = 0.0  # monotonic
        self._heard_wall = datetime.now(UTC)  # when the last answered heartbeat was sent
        self._lost = True
        self._closed = False

    def trusted(self) -> bool:
        """PostgreSQL heard recently: no announced post can have passed this worker by."""
        return self.trusted_at(time.monotonic())

    def trusted_at(self, now: float) -> bool:
        """trusted(), at `now` (time.monotonic(), read once for a whole request by the caller)."""
        return now < self._live_until

    def close(self) -> None:
        self._closed = True

    async def announce(self, conn: Any, tags: list[str], since: datetime) -> None:
        """Tell every worker (on any connection: a pooled one will do) that a post to these tags,
        made at `since`, is missing from the shared cache entries."""
        payload = " ".join([DIRTY, since.isoformat(), *tags])
        await conn.execute("SELECT pg_notify($1, $2)", self.channel, payload)

    async def run(self) -> None:
        """For the worker's lifetime: listens again, on a new connection, after any failure."""
        while not self._closed:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._lost:
                    log.warning("database notices lost (%r): caches bypassed until they are back", exc)
                    # What was announced meanwhile is never heard: repair as after a Redis outage.
                    self._on_dirty(self._heard_wall, [])
                self._lost = True
                await asyncio.sleep(self._retry)

    async def _follow(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
        try:
            await conn.add_listener(self.channel, self._heard)
            while not self._closed:
                sent, wall = time.monotonic(), datetime.now(UTC)
                await conn.fetchval("SELECT 1", timeout=self.stale_after)
                self._live_until, self._heard_wall = sent + self.stale_after, wall
                if self._lost:
                    self._lost = False
                    log.info("database notices heard")
                await asyncio.sleep(self._ping)
        finally:
            conn.terminate()  # at once: across a cut a polite close would wait

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        words = str(payload).split()
        if words[:1] != [DIRTY] or len(words) < 2:
            log.warning("a database notice not understood: %r", words[:3])
            return
        try:
            since = datetime.fromisoformat(words[1])
        except ValueError:
            log.warning("a database notice without a readable time: %r", words[1][:64])
            return
        self._on_dirty(since, words[2:])
