"""Prometheus metrics of every worker, served by any of them at GET /metrics (prometheus-client).

Workers are processes: `python -m service run` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before they start, each worker writes its samples there, and a scrape answered by any
worker adds up all of them. Without that variable (a process of its own, the in-process tests)
the process's own registry is served.

Labels are bounded: the route's pattern, never the raw path, so a client cannot create series.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter("http_requests_total", "Requests answered, by route pattern, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("http_request_duration_seconds", "Time from the request's arrival to its response",
                    ["route"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CACHE = Counter("search_cache_total", "Searches by cache outcome (X-Cache: HIT, MISS, BYPASS)", ["result"])
# Live gauges: each worker sets its own every second; a worker that stopped is left out.
LIVE: Final = "livesum"
POOL_SIZE = Gauge("db_pool_connections", "PostgreSQL connections open in the pools", multiprocess_mode=LIVE)
POOL_IDLE = Gauge("db_pool_connections_idle", "Open connections not lent out", multiprocess_mode=LIVE)
POOL_WAITING = Gauge("db_pool_waiting", "Requests waiting for a connection", multiprocess_mode=LIVE)
BREAKER_OPEN = Gauge("redis_breaker_open_workers", "Workers whose Redis circuit breaker is open",
                     multiprocess_mode=LIVE)
LOCAL_CACHE_BYTES = Gauge("local_cache_bytes", "Bytes of responses held by the in-process page caches",
                          multiprocess_mode=LIVE)


def render() -> bytes:
    """The exposition of every worker's metrics (or this process's)."""
    if os.environ.get(MULTIPROCESS):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def worker_stopped(pid: int) -> None:
    """Leave a stopped worker's live gauges out of later scrapes."""
    if os.environ.get(MULTIPROCESS):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def sample(pool_size: Callable[[], int], pool_idle: Callable[[], int], waiting: Callable[[], int],
           breaker_open: Callable[[], bool], local_bytes: Callable[[], int]) -> None:
    """This worker's live gauges, read from its resources."""
    POOL_SIZE.set(pool_size())
    POOL_IDLE.set(pool_idle())
    POOL_WAITING.set(waiting())
    BREAKER_OPEN.set(1 if breaker_open() else 0)
    LOCAL_CACHE_BYTES.set(local_bytes())
