"""Post and search: the one place that combines PostgreSQL and the Redis tag cache.

Framework-independent (it returns bytes), so a peer web framework can serve it unchanged.

Rules that keep the cache coherent:
- the cache is updated after the database commit, never inside it; if a worker dies in between,
  the sibling that starts it again repairs as after an outage (service/app.py);
- a post whose cache update failed (or was skipped because Redis is down), and a lost or quiet
  invalidation feed (service/cache/feed.py), mark this worker dirty: it bypasses the cache and,
  once Redis answers again, invalidates every tag posted to since then (read from PostgreSQL,
  so posts of other workers are covered too) before using the cache again; when the feed finds
  Redis holding data from another run, every cached tag is invalidated instead. Nothing
  acknowledged goes missing from search after an outage;
- while any worker of the service on this host is dirty, its siblings bypass the cache too
  (service/cache/generations.py DirtyWorkers): a post's failed update may have left a shared
  entry without the post, and a sibling may still read it without an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

import asyncpg
from redis.exceptions import ResponseError

from service.cache.acks import Acks
from service.cache.batch import Together
from service.cache.generations import DirtyWorkers
from service.cache.guard import CacheDown, Guard
from service.cache.local import LocalCache
from service.cache.notices import Notices
from service.cache.singleflight import SingleFlight
from service.cache.tags import EVERYTHING, Page, Posted, TagCache, window_answers
from service.codec import Codec
from service.db import tweets
from service.db.database import Database
from service.db.posts import Posts, WriteUnknown
from service.errors import (
    NOT_YET_SHOWN,
    USER_GONE,
    WRITE_UNKNOWN,
    WRITE_UNKNOWN_LOGGED,
    ServiceUnavailable,
    Unauthorized,
    success,
)
from service.security.tokens import Identity
from service.validate import NewTweet, SearchQuery

log = logging.getLogger(__name__)

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
UPDATES_MAX = 64  # posts' cache updates in one script call at most (POST_UPDATES_TOGETHER)


@dataclass(frozen=True, slots=True)
class Filled:
    total: int
    tweets: list[tuple[int, bytes]]  # newest first, at most the cache's size
    # Stored in Redis, so no post to the tag came between the version read and the store: the
    # rows are current. Otherwise a post may have been acknowledged while the fill ran, and a
    # search that joined the fill after that acknowledgement must not be answered from it.
    current: bool


def _outcome_seen(task: asyncio.Future[bytes]) -> None:
    """A shielded post's failure, read: when its caller was cancelled (the client gone, a deadline),
    asyncio would log it as an exception never retrieved, with a traceback, though the post failed
    as any post may (PostgreSQL unreachable: the 503 no one waits for any more). A caller still
    waiting gets the failure as well, and answers it."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("post failed: %r", task.exception())


class Timeline:
    def __init__(self, db: Database, codec: Codec, *, cache: TagCache | None, guard: Guard,
                 singleflight: bool = True, local: LocalCache | None = None,
                 stored_json: bool = True, called_searches: bool = False,
                 dirty_workers: DirtyWorkers | None = None,
                 posts: Posts | None = None, updates_together: bool = True,
                 acks: Acks | None = None, notices: Notices | None = None) -> None:
        self._db = db
        self._posts = posts if posts is not None else Posts(db, batch_max=1, slots=1)
        self._codec = codec
        self._cache = cache
        self._local = local
        self._guard = guard
        self._fills: SingleFlight[Filled] = SingleFlight(singleflight)
        self._dirty_since: datetime | None = None
        self._failures = 0  # mark_dirty calls: a repair is done only if none came while it worked
        self._dirty_workers = dirty_workers
        self._repair: asyncio.Task[None] | None = None
        self._closed = False  # closing: no repair starts (it would outlive the pool)
        self._moved_to: str | None = None  # the new Redis run, while its old entries are dropped
        self._stored_json = stored_json
        self._called_searches = called_searches  # the search functions' calls (through a pooler)
        # The cache updates of posts answered in one tick (a PostgreSQL batch's) as one script call.
        self._together = Together(self._add_posts, UPDATES_MAX) if updates_together else None
        # A post waits until every feed has dropped its tags' pages (POST_WAITS_FOR_WORKERS, acks.py).
        self._acks = acks
        # A post whose cache update failed is announced through PostgreSQL (notices.py).
        self._notices = notices

    # -- serialization: a tweet's JSON comes from PostgreSQL (sql/006 tweet_json), as stored --

    def page_json(self, items: Sequence[bytes] | bytes, total: int, q: SearchQuery) -> bytes:
        """The search response around already-serialized tweets (a list, or pre-joined)."""
        joined = items if isinstance(items, bytes) else b",".join(items)
        pagination = self._codec.dumps({"total": total, "page": q.page, "page_size": q.page_size})
        return success(b"[" + joined + b"]", b',"pagination":' + pagination)

    # -- post --

    async def post(self, user: Identity, new: NewTweet) -> bytes:
        # Shielded: once the tweet is committed, a client hanging up must not cancel the cache
        # update that makes it visible.
        task = asyncio.ensure_future(self.post_unshielded(user, new))
        task.add_done_callback(_outcome_seen)  # by no one, if the caller was cancelled meanwhile
        return await asyncio.shield(task)

    async def post_unshielded(self, user: Identity, new: NewTweet) -> bytes:
        """post() for a caller that is never cancelled (the protocol's lean post): no task of its own."""
        try:
            row = await self._posts.write(user.user_id, user.username, new.msg, new.tags)
        except asyncpg.ForeignKeyViolationError:  # a valid token whose user was deleted
            raise Unauthorized(message=USER_GONE) from None
        except WriteUnknown as exc:  # sent, then the connection lost: it may have committed
            log.warning("%s %r", WRITE_UNKNOWN_LOGGED, exc.__cause__)  # what the driver or pooler said
            raise ServiceUnavailable(message=WRITE_UNKNOWN) from exc.__cause__
        body: bytes = row["body"].encode()
        if self._cache is not None and new.tags:
            updated = False
            if self._guard.updatable():
                try:
                    await self._update((new.tags, row["id"], body))  # tells the other workers
                    updated = True
                except CacheDown as exc:
                    log.warning("cache update failed after post %s: %s", row["id"], exc)
                    if isinstance(exc.__cause__, ResponseError):  # Redis answers but refused it
                        await self._announce_dirty(new.tags, row["created_at"])
            if self._local is not None:
                self._local.posted(new.tags)
            if not updated:
                self.mark_dirty(row["created_at"])
                await self._announce(new.tags, row["created_at"])
        return body

    async def _announce(self, tags: list[str], since: datetime) -> None:
        """A post the shared cache lacks, told to every worker through PostgreSQL; answered once each
        has heard it or stopped trusting its caches (notices.py). If even that fails, the post is
        saved but its visibility not established: 503, saying so."""
        notices = self._notices
        if notices is None:
            return
        try:
            async with self._db.connection() as conn:
                await notices.announce(conn, tags, since)
        except Exception as exc:
            log.warning("could not announce a post the cache lacks: %r", exc)
            raise ServiceUnavailable(message=NOT_YET_SHOWN) from exc
        await asyncio.sleep(notices.stale_after)

    def _update(self, posted: Posted) -> Awaitable[None]:
        if self._together is not None:
            return self._together(posted)
        return self._add_posts([posted])

    async def _add_posts(self, posted: list[Posted]) -> None:
        assert self._cache is not None
        acks = self._acks
        if acks is None or not acks.asks:
            await self._guard(self._cache.add_many(posted))
            return
        word, number = acks.ask()
        try:
            counted = await self._guard(self._cache.add_many(posted, word, acks.group))
        except BaseException:
            acks.forget(number)
            raise
        await acks.wait(number, counted)  # every instance's workers, their pages of the tags dropped

    @property
    def posts_answered_late(self) -> int:
        """Posts answered after waiting wait_at_most for the feeds (/metrics)."""
        return self._acks.late if self._acks is not None else 0

    @property
    def posts_batched(self) -> int:
        """Posts written in a statement with others (/metrics)."""
        return self._posts.batched

    async def _announce_dirty(self, tags: list[str], since: datetime) -> None:
        """Other instances' workers still read the entries Redis did not let this post update: before
        the 201, tell them (as siblings here are told by DirtyWorkers)."""
        assert self._cache is not None
        try:
            await self._guard(self._cache.announce_dirty(tags, since))
        except CacheDown as exc:
            log.warning("could not announce the missed cache update: %s", exc)

    # -- search --

    async def search(self, q: SearchQuery) -> tuple[bytes, str]:
        """(response body, X-Cache value)."""
        if self._cache is None:
            return await self._search_db(q), BYPASS
        now = monotonic()
        if not self._cache_usable(now):
            return await self._search_db(q), BYPASS
        key = (q.tag, q.page, q.page_size, q.before_id)
        local = self._local
        if local is not None:
            body = local.get(key, now)
            if body is not None:
                return body, HIT
            token = local.token(q.tag)
        body, state = await self._search_cached(q)
        if local is not None and state != BYPASS:
            local.put(key, body, token)
        return body, state

    def cached_page(self, q: SearchQuery, now: float) -> bytes | None:
        """The page's body from the in-process cache while the cache is trusted, else None: the
        answer of search() when it is a local hit (the protocol's fast path asks it directly, with
        `now`, time.monotonic() read once for the request)."""
        local = self._local
        if local is None or self._cache is None or not self._cache_usable(now):
            return None
        return local.get((q.tag, q.page, q.page_size, q.before_id), now)

    async def _search_cached(self, q: SearchQuery) -> tuple[bytes, str]:
        assert self._cache is not None
        offset = (q.page - 1) * q.page_size
        if offset >= self._cache.size:  # past the newest cache.size tweets a tag's entry holds:
            return await self._search_db(q), MISS  # no Redis round trip (nor a fill) can answer it
        try:
            page = await self._guard(self._cache.read(q.tag, offset, q.page_size, q.before_id))
        except CacheDown:
            return await self._search_db(q), BYPASS
        if isinstance(page, Page):
            if page.complete:
                return self.page_json(page.items, page.total, q), HIT
            return await self._search_db(q), MISS  # deeper than the cached window
        version = page.version
        filled = await self._fills.do(q.tag, lambda: self._fill(q.tag, version))
        page = self._slice(filled, offset, q.page_size, q.before_id)
        if page.complete and filled.current:
            return self.page_json(page.items, page.total, q), MISS
        return await self._search_db(q), MISS  # deeper than the window, or a fill that raced a post

    async def _fill(self, tag: str, version: bytes | None) -> Filled:
        """The tag's newest tweets from PostgreSQL, stored in the cache if no post to the tag came
        after `version` was read (read here when the miss did not bring it)."""
        assert self._cache is not None
        if version is None:
            try:
                version = await self._guard(self._cache.version(tag))
            except CacheDown:
                version = None
        async with await self._db.reader() as conn:
            total, rows = await tweets.search(conn, tag, self._cache.size, 0, None, self._stored_json,
                                              self._called_searches)
        stored = False
        if version is not None and self._clean() and self._guard.feed_trusted():
            try:
                stored = await self._guard(self._cache.fill(tag, version, total, rows))
            except CacheDown:
                pass
        return Filled(total, rows, stored)

    def _slice(self, filled: Filled, offset: int, count: int, before_id: int | None) -> Page:
        tweets_ = filled.tweets
        if before_id is not None:
            tweets_ = [t for t in tweets_ if t[0] < before_id]
        items = [body for _, body in tweets_[offset: offset + count]]
        return Page(items, filled.total,
                    window_answers(len(items), count, len(filled.tweets), filled.total, offset, before_id))

    def _cache_usable(self, now: float) -> bool:
        """_clean() and the guard's readable(), in as few calls as every cached page allows."""
        board = self._dirty_workers
        return (self._dirty_since is None and (board is None or not board.any())
                and self._guard.readable_at(now))

    def _clean(self) -> bool:
        """Neither this worker nor a sibling is dirty."""
        board = self._dirty_workers
        return self._dirty_since is None and (board is None or not board.any())

    async def _search_db(self, q: SearchQuery) -> bytes:
        async with await self._db.reader() as conn:
            total, items = await tweets.search_page(conn, q.tag, q.page_size, (q.page - 1) * q.page_size,
                                                    q.before_id, self._stored_json, self._called_searches)
        return self.page_json(items, total, q)

    # -- repair after a Redis outage --

    @property
    def breaker_open(self) -> bool:
        return self._guard.breaker.open

    @property
    def dirty(self) -> bool:
        """Bypassing the cache until a repair is done (this worker's or a sibling's)."""
        return not self._clean()

    def mark_dirty(self, since: datetime) -> None:
        """Bypass the cache until every tag posted to since then has been invalidated."""
        # Margin: a post's created_at is its transaction's start; another worker's post may have
        # started a little earlier and committed during the outage (and clocks may differ).
        since = since - timedelta(seconds=2) if since > EVERYTHING + timedelta(seconds=2) else EVERYTHING
        if self._dirty_since is None or since < self._dirty_since:
            self._dirty_since = since
        self._failures += 1
        if self._dirty_workers is not None:
            self._dirty_workers.set(True)  # siblings bypass too from now on
        if not self._closed and (self._repair is None or self._repair.done()):
            self._repair = asyncio.get_running_loop().create_task(self._repair_loop())

    def mark_moved(self, run: str) -> None:
        """Redis now holds data from another run (a snapshot, a promoted replica): invalidate
        every cached tag before using the cache again."""
        self._moved_to = run
        self.mark_dirty(EVERYTHING)

    async def _repair_loop(self) -> None:
        """Until it succeeds: invalidate every tag posted to since the outage began.

        It first waits until Redis has settled (Guard.settled), so the tags read from PostgreSQL
        here include every post acknowledged without its update."""
        assert self._cache is not None
        while self._dirty_since is not None:
            since, failures = self._dirty_since, self._failures
            if not self._guard.settled():
                await asyncio.sleep(0.05)
                continue
            moved = self._moved_to
            try:
                if since == EVERYTHING:
                    tags = await self._cache.cached_tags()
                else:
                    async with self._db.connection() as conn:
                        tags = await tweets.tags_since(conn, since)
            except Exception as exc:  # Redis or PostgreSQL is down: try again shortly
                log.warning("cache repair postponed: %r", exc)
                await asyncio.sleep(0.2)
                continue
            try:
                for start in range(0, len(tags), 500):
                    await self._guard(self._cache.invalidate(tags[start: start + 500]))
                if moved is not None:
                    await self._guard(self._cache.record_run(moved))
            except CacheDown:
                await asyncio.sleep(0.2)
                continue
            if self._failures == failures:  # no failure while we worked, whatever its time
                self._dirty_since = None
                if self._dirty_workers is not None:
                    self._dirty_workers.set(False)
                if self._moved_to == moved:
                    self._moved_to = None
                log.info("cache repaired after outage: %d tags invalidated", len(tags))

    async def close(self) -> None:
        self._closed = True
        if self._repair is not None:
            self._repair.cancel()
            await asyncio.wait([self._repair])
