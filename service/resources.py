"""The per-worker resources, built from Settings in one place and closed in one place.

Used by the Sanic app (service/app.py) and the peer stack (bench/peers/fastapi_app.py), so both
serve with the same pool, cache, feed and timeline.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import redis.asyncio as redis
from redis.asyncio import RedisCluster

from service.accounts import Accounts
from service.cache.acks import Acks, host_group
from service.cache.client import CACHE_ERRORS, Breaker, create_client, master_clients
from service.cache.feed import Feed
from service.cache.generations import DirtyWorkers, SharedGenerations
from service.cache.guard import Guard
from service.cache.local import LocalCache
from service.cache.notices import Notices
from service.cache.tags import TagCache
from service.cache.wire import WireClient
from service.codec import Codec, codec
from service.db.database import Database, Replica
from service.db.pool import Deadlines, IdleSweep, PoolStats, create_pool, opener
from service.db.posts import Posts
from service.hooks import apply_hooks
from service.security.passwords import Passwords
from service.security.tokens import Tokens
from service.settings import Settings
from service.timeline import Timeline


@dataclass(frozen=True, slots=True)
class Resources:
    codec: Codec
    pool: asyncpg.Pool
    redis: redis.Redis | RedisCluster | None
    wire: WireClient | None  # the cache's request-path commands (USE_WIRE_CLIENT)
    local: LocalCache | None
    feed: Feed | None
    tasks: tuple[asyncio.Task[None], ...]  # the feed, the statement deadline watch, the idle sweep
    passwords: Passwords
    tokens: Tokens
    accounts: Accounts
    timeline: Timeline
    replica: asyncpg.Pool | None  # REPLICA_DATABASE_URL's, for searches that miss the cache
    db_stats: PoolStats  # this worker's pool waits and replica reads (/metrics)


async def open_resources(settings: Settings) -> Resources:
    """Everything one worker serves with; call inside the worker's event loop."""
    settings.require_resolved()
    chosen = codec(settings.tuning.use_orjson)
    db, watch, sweep = await worker_database(settings)
    pool, replica, stats = db.primary, db.replica, db.stats
    client = create_client(settings, settings.cache.redis_url) if settings.cache.cache_enabled else None
    cache = local = feed = wire = acks = notices = None
    # The feed calls back into the timeline, which is made after it.
    timeline: Timeline | None = None

    def lost(since: datetime) -> None:
        if timeline is not None:
            timeline.mark_dirty(since)

    def dirty(since: datetime, tags: list[str]) -> None:  # a database notice (notices.py)
        if local is not None:
            for tag in tags:
                local.invalidate(tag)
        lost(since)

    def moved(run: str) -> None:
        if timeline is not None:
            timeline.mark_moved(run)

    # The feed hearing Redis again closes the breaker at once (it would wait out its reset).
    c, tuning = settings.cache, settings.tuning
    breaker = Breaker(c.breaker_failures, c.breaker_reset_seconds)
    if client is not None:
        if tuning.use_wire_client and not c.redis_cluster:
            wire = WireClient(c.redis_url, c.redis_socket_timeout, c.redis_connect_timeout,
                              tuning.use_pipeline)
        cache = TagCache(client, c.cache_prefix, c.cache_ttl_seconds, c.cache_ttl_jitter, c.cache_tag_size,
                         tuning.use_pipeline, tuning.cache_read_version, wire, cluster=c.redis_cluster)
        if c.local_cache_ttl > 0:
            local = LocalCache(c.local_cache_ttl, c.local_cache_bytes,
                               SharedGenerations(settings.worker_files() / "tag-generations"))
        acks = worker_acks(settings)
        feed = Feed(client, cache, local, ping_interval=c.feed_ping_interval, stale_after=c.feed_stale_after,
                    # Reconnect often: while a worker's feed is down it cannot vouch for its caches.
                    retry_seconds=c.feed_stale_after / 2, reconnect_after=c.feed_reconnect_after,
                    on_lost=lost, on_moved=moved, on_back=breaker.success, acks=acks,
                    nodes=master_clients(settings, client) if isinstance(client, RedisCluster) else None)
        notices = worker_notices(settings, dirty)
    dirty_workers = None if cache is None else \
        DirtyWorkers(settings.worker_files() / "dirty-workers", worker_number(), settings.workers)
    passwords = Passwords(settings.hash_threads, settings.hash_queue, settings.hash_niceness)
    tokens = Tokens(settings.token_secret, settings.token_ttl_seconds, settings.token_cache_size)
    timeline = Timeline(
        db, chosen, cache=cache, guard=Guard(breaker, feed, notices), singleflight=tuning.use_singleflight,
        local=local, stored_json=tuning.stored_tweet_json,
        called_searches=not settings.db_prepared_statements and tuning.use_pooler_search_functions,
        dirty_workers=dirty_workers, posts=Posts(db, tuning.post_batch_max, tuning.post_batch_slots),
        updates_together=tuning.post_updates_together, acks=acks, notices=notices)
    apply_hooks(settings.hooks, timeline, cache)
    tasks = tuple(asyncio.create_task(job.run()) for job in (feed, notices, watch, sweep) if job is not None)
    return Resources(chosen, pool, client, wire, local, feed, tasks, passwords, tokens,
                     Accounts(db, passwords, tokens), timeline, replica.pool if replica else None, stats)


async def worker_database(settings: Settings) -> tuple[Database, Deadlines | None, IdleSweep | None]:
    """The worker's pools (the primary's, the replica's) behind one Database, the watch over the
    statements' deadlines and the sweep of idle connections, as the settings ask."""
    pool = await create_pool(settings, settings.db.database_url)
    begin, stats = await opener(settings, pool), PoolStats()
    watch = Deadlines(settings.db.db_command_timeout) if settings.tuning.use_deadline_watch else None
    replica = None
    if settings.db.replica_database_url:
        replica = Replica(pool, await create_pool(settings, settings.db.replica_database_url),
                          settings.db.db_acquire_timeout, begin, stats, watch)
    db = Database(pool, settings.db.db_acquire_timeout, begin, replica, stats, settings.tuning.use_lean_pool,
                  watch, pooled=settings.db.db_transaction_pooler)
    sweep = IdleSweep([pool, *([replica.pool] if replica else [])], settings.db.db_idle_lifetime) \
        if settings.tuning.use_lean_pool else None
    return db, watch, sweep


def worker_acks(settings: Settings) -> Acks:
    """This worker's asks and answers (service/cache/acks.py); its group is its service's workers on
    this host. Its feed answers other posts' asks whether or not its own posts ask."""
    group = host_group(socket.gethostname(), str(settings.worker_files()))
    return Acks(2 * settings.cache.feed_stale_after, group, asks=settings.tuning.post_waits_for_workers)


def worker_notices(settings: Settings, dirty: Callable[[datetime, list[str]], None]) -> Notices | None:
    """This worker's ear on PostgreSQL for posts the cache lacks (DATABASE_NOTICES, notices.py)."""
    if not settings.db.database_notices:
        return None
    c = settings.cache
    return Notices(settings.notices_url(), f"{c.cache_prefix}_notices", ping_interval=c.feed_ping_interval,
                   stale_after=c.feed_stale_after, retry_seconds=c.feed_stale_after / 2,
                   connect_timeout=settings.db.db_acquire_timeout, on_dirty=dirty)


def worker_number() -> int:
    """This server worker's number among the service's (Sanic names them Sanic-Server-N-K, keeping N
    when it starts one again); 0 outside Sanic's worker processes."""
    name = os.environ.get("SANIC_WORKER_NAME", "")
    match = re.fullmatch(r"Sanic-Server-(\d+)-\d+", name)
    return int(match[1]) if match else 0


def settle(settings: Settings) -> None:
    """Once a worker is about to serve: what its start-up made lives as long as it does, and leaves
    the garbage collector's generations (USE_GC_FREEZE), garbage collected first."""
    if settings.tuning.use_gc_freeze:
        gc.collect()
        gc.freeze()


async def close_resources(res: Resources, seconds: float = 5.0) -> None:
    """Close everything, each step bounded: a worker that is stopping must not hang on a
    connection left in a bad state by an outage."""
    if res.feed is not None:
        res.feed.close()
    for task in res.tasks:  # the feed first: losing it would start a repair
        task.cancel()
    if res.tasks:
        await asyncio.wait(res.tasks, timeout=seconds)
    await res.timeline.close()
    if res.wire is not None:
        await res.wire.aclose()
    if res.redis is not None:
        try:
            await asyncio.wait_for(res.redis.aclose(), seconds)
        except (TimeoutError, *CACHE_ERRORS):
            pass
    for pool in (res.pool, res.replica):
        if pool is None:
            continue
        try:
            await asyncio.wait_for(pool.close(), seconds)
        except TimeoutError:
            pool.terminate()
    res.passwords.close()
