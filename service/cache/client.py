"""The Redis client and the circuit breaker that keeps a dead Redis off the request path."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.settings import Settings

# Everything a cache call may raise when Redis is slow, gone or restarting.
CACHE_ERRORS = (redis.RedisError, OSError, TimeoutError)
# A connection that went away under redis-py while it wrote to it surfaces as a bare error from
# its write path, not a ConnectionError: uvloop's RuntimeError ("unable to perform operation on
# <TCPTransport closed=True ...>; the handler is closed") or, when another task dropped the
# connection meanwhile, an AttributeError on its writer (None). Both seen when a Redis Cluster
# master restarts under load (tests/integration/test_redis_cluster.py).
LOST_WRITE = (RuntimeError, AttributeError)
WRITE_PATH = ("send_packed_command", "_send_packed_command")


def cache_error(exc: BaseException) -> bool:
    """Does this error mean Redis is away or slow (the cache bypassed), rather than a bug (500)?"""
    if isinstance(exc, CACHE_ERRORS):
        return True
    if not isinstance(exc, LOST_WRITE):
        return False
    tb = exc.__traceback__
    while tb is not None:  # raised inside redis-py's connection write path?
        code = tb.tb_frame.f_code
        if code.co_name in WRITE_PATH and code.co_filename.endswith(("redis/asyncio/connection.py",)):
            return True
        tb = tb.tb_next
    return False


def create_client(settings: Settings, url: str) -> redis.Redis | redis.RedisCluster:
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

    if settings.cache.redis_cluster:  # parses with hiredis when installed (its parser is not a setting)
        return redis.RedisCluster.from_url(
            url, socket_timeout=settings.cache.redis_socket_timeout,
            socket_connect_timeout=settings.cache.redis_connect_timeout,
            retry=Retry(NoBackoff(), settings.cache.redis_retries),
            max_connections=settings.cache.redis_max_connections,
            protocol=2)
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.cache.redis_socket_timeout,
        socket_connect_timeout=settings.cache.redis_connect_timeout,
        # One immediate retry: after a Redis restart the first use of each pooled connection
        # fails, and the retry reconnects instead of turning that into an error.
        retry=Retry(NoBackoff(), settings.cache.redis_retries),
        max_connections=settings.cache.redis_max_connections,
        parser_class=_AsyncHiredisParser if settings.tuning.use_hiredis else _AsyncRESP2Parser,
        protocol=2,
        health_check_interval=0,
    )


def master_clients(settings: Settings,
                   cluster: redis.RedisCluster) -> Callable[[], Awaitable[list[redis.Redis]]]:
    """A client per master of the cluster as it is now (the invalidation feed subscribes on each)."""
    async def masters() -> list[redis.Redis]:
        await cluster.initialize()  # the current topology (a failover may have moved a master)
        password = cluster.get_connection_kwargs().get("password")
        return [redis.Redis(host=node.host, port=int(node.port), password=password,
                            socket_timeout=settings.cache.redis_socket_timeout,
                            socket_connect_timeout=settings.cache.redis_connect_timeout, protocol=2)
                for node in cluster.get_primaries()]
    return masters


class Breaker:
    """Closed -> open after N consecutive failures -> one probe after reset_seconds.

    While open, callers skip Redis entirely (X-Cache: BYPASS) instead of each paying a timeout.
    """

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self._threshold = failures
        self._reset = reset_seconds
        self._failures = 0
        self._open_until = 0.0

    def allow(self) -> bool:
        if self._failures < self._threshold:
            return True
        now = time.monotonic()
        if now >= self._open_until:
            self._open_until = now + self._reset  # let exactly one probe through per period
            return True
        return False

    def success(self) -> None:
        self._failures = 0

    def failure(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = time.monotonic() + self._reset

    @property
    def open(self) -> bool:
        return self._failures >= self._threshold
