"""The service's /metrics read by the harness: make bench and the Locust runs report the cache's hit
ratio and the pool's waits next to their throughput, from two scrapes around a run."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import FLUSH_SECONDS

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(url: str, timeout: float = 10) -> Samples:
    """Every sample of one scrape, by name and sorted labels (a new connection: any worker answers,
    and each answers the sum of all of them)."""
    r = httpx.get(f"{url}/metrics", timeout=timeout)
    r.raise_for_status()
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[s.name][tuple(sorted(s.labels.items()))] = s.value
    return samples


def total(samples: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    """The sum of the samples whose labels include every one given."""
    return sum(v for key, v in samples.items() if all((k, want) in key for k, want in labels.items()))


def try_scrape(url: str | list[str], settle: bool = True) -> Samples | None:
    """A scrape, or None where the target has no /metrics (a peer stack, metrics switched off);
    of several URLs (every instance behind a balancer), the sum. The worker that answers counts
    itself to the moment, the others as of their last flush, so with several workers the scrape
    waits one flush first (settle) for every count to be in."""
    if settle:
        time.sleep(FLUSH_SECONDS + 0.1)
    summed: Samples = defaultdict(dict)
    try:
        for one in [url] if isinstance(url, str) else url:
            for name, series in scrape(one).items():
                for labels, value in series.items():
                    summed[name][labels] = summed[name].get(labels, 0.0) + value
    except (httpx.HTTPError, ValueError):
        return None
    return summed


def between(before: Samples | None, after: Samples | None) -> dict[str, Any]:
    """What happened between two scrapes: searches by cache outcome, the hit ratio, lendings of a
    PostgreSQL connection and the mean wait for one. Empty when either scrape is missing."""
    if before is None or after is None:
        return {}

    def grew(name: str, **labels: str) -> float:
        return total(after.get(name, {}), **labels) - total(before.get(name, {}), **labels)

    outcomes = {r: grew("search_cache_total", result=r) for r in ("HIT", "MISS", "BYPASS")}
    searches = sum(outcomes.values())
    acquires = grew("db_pool_acquires_total")
    return {"cache": {k: int(v) for k, v in outcomes.items()},
            "hit_ratio": round(outcomes["HIT"] / searches, 4) if searches else None,
            "fast_hits": int(grew("fast_hits_total")),  # of the HITs, answered at the protocol
            "fast_share": round(grew("fast_hits_total") / searches, 4) if searches else None,
            "pool_acquires": int(acquires),
            "pool_wait_us_mean": round(grew("db_pool_wait_seconds_total") / acquires * 1e6, 1)
            if acquires else None}
