"""Prometheus metrics of every worker, served by any of them at GET /metrics.

On the request path a worker only adds to plain dicts (prometheus-client's multiprocess mode,
which writes a memory-mapped file per sample, measured 24% off the cached search's throughput).
Every second, and before answering a scrape, each worker writes its totals to a file of its own in
METRICS_DIR; a scrape adds up every worker's file and renders the sum with prometheus-client.
Counters of a worker that stopped still count (they only ever grow); its gauges do not.

Labels are bounded: the route's pattern, never the raw path, so a client cannot create series.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

CONTENT_TYPE = CONTENT_TYPE_LATEST
FLUSH_SECONDS = 1.0  # each worker writes its totals this often; a scrape sees others this late
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
GAUGES = {
    "db_pool_connections": "PostgreSQL connections open in the pools",
    "db_pool_connections_idle": "Open PostgreSQL connections not lent out",
    "db_pool_waiting": "Requests waiting for a PostgreSQL connection",
    "redis_breaker_open_workers": "Workers whose Redis circuit breaker is open",
    "local_cache_bytes": "Bytes of responses held by the in-process page caches",
}
# Totals a worker keeps itself (sampled with its gauges): they only grow, and still count once
# the worker has stopped.
TOTALS = {
    "db_pool_acquires": "Requests for a PostgreSQL connection from the pools (lent, or timed out)",
    "db_pool_wait_seconds": "Seconds requests spent waiting for a PostgreSQL connection",
    "db_replica_reads": "Searches that missed the cache answered by the replica (REPLICA_DATABASE_URL)",
    "db_replica_behind_reads": "Searches that missed the cache sent to the primary: the replica was behind",
    "fast_hits": "Cached searches answered at the protocol, before the framework (USE_FAST_HITS)",
    "lean_searches": "Searches not in the worker's cache answered at the protocol (USE_LEAN_SEARCH)",
    "lean_posts": "Posts answered at the protocol (USE_LEAN_POST)",
    "posts_batched": "Posts written in one statement with others that arrived together (POST_BATCH_MAX)",
    "posts_answered_late": "Posts answered after waiting their longest for every feed to drop their pages",
}


class Metrics:
    """One worker's counts, and the sum over every worker's file."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._file = folder / f"{os.getpid()}.json"
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # route -> bucket counts..., +Inf count, sum
        self.cache: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.totals: dict[str, float] = {}
        self.fast_hits = 0  # cached searches answered by the front (service/http/)
        self.lean_searches = 0  # other searches answered there
        self.lean_posts = 0  # posts answered there

    def observe(self, route: str, method: str, status: int, seconds: float | None, cache: str | None,
                n: int = 1) -> None:
        """n answered requests alike (one, but for hits answered together): a few dict updates."""
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + n
        if seconds is not None:
            row = self.latency.get(route)
            if row is None:
                row = self.latency[route] = [0.0] * (len(BUCKETS) + 2)
            row[bisect.bisect_left(BUCKETS, seconds)] += n
            row[-1] += seconds * n
        if cache is not None:
            self.cache[cache] = self.cache.get(cache, 0) + n

    def flush(self) -> None:
        """This worker's totals to its file (atomically: a scrape never reads half a file)."""
        data = {"pid": os.getpid(), "requests": [[*k, v] for k, v in self.requests.items()],
                "latency": self.latency, "cache": self.cache, "gauges": self.gauges,
                "totals": self.totals}
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._file)

    def render(self) -> bytes:
        self.flush()
        registry = CollectorRegistry()
        registry.register(_Sum(self._folder))
        return generate_latest(registry)


class _Sum(Collector):
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def collect(self) -> Iterator[Any]:
        requests: dict[tuple[str, str, str], float] = {}
        latency: dict[str, list[float]] = {}
        cache: dict[str, float] = {}
        gauges: dict[str, float] = dict.fromkeys(GAUGES, 0.0)
        totals: dict[str, float] = dict.fromkeys(TOTALS, 0.0)
        for path in self._folder.glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker writing its first file
            for route, method, status, n in data["requests"]:
                key = (route, method, str(status))
                requests[key] = requests.get(key, 0) + n
            for route, row in data["latency"].items():
                total = latency.setdefault(route, [0.0] * len(row))
                for i, v in enumerate(row):
                    total[i] += v
            for result, n in data["cache"].items():
                cache[result] = cache.get(result, 0) + n
            for name, v in data.get("totals", {}).items():
                totals[name] = totals.get(name, 0.0) + v
            if _alive(int(data["pid"])):
                for name, v in data["gauges"].items():
                    gauges[name] = gauges.get(name, 0.0) + v
        counter = CounterMetricFamily("http_requests", "Requests answered, by route pattern, method, status",
                                      labels=["route", "method", "status"])
        for key, n in sorted(requests.items()):
            counter.add_metric(list(key), n)
        yield counter
        histogram = HistogramMetricFamily("http_request_duration_seconds",
                                          "Time from the request's arrival to its response", labels=["route"])
        for route, row in sorted(latency.items()):
            cumulative, buckets = 0.0, []
            for bound, n in zip([*map(str, BUCKETS), "+Inf"], row[:-1], strict=True):
                cumulative += n
                buckets.append((bound, cumulative))
            histogram.add_metric([route], buckets, row[-1])
        yield histogram
        outcomes = CounterMetricFamily("search_cache", "Searches by cache outcome", labels=["result"])
        for result, n in sorted(cache.items()):
            outcomes.add_metric([result], n)
        yield outcomes
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text, value=gauges[name])
        for name, text in TOTALS.items():
            yield CounterMetricFamily(name, text, value=totals[name])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
