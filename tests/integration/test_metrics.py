"""GET /metrics on a real two-worker service: every scrape, whichever worker answers it, adds up
the requests of both workers; labels are route patterns, never raw paths."""

from __future__ import annotations

import httpx
import pytest

from bench.scrape import scrape, total
from tests.conftest import from_every_worker, register_and_login, start_server, unique, wait_until


def test_every_scrape_adds_up_both_workers(urls: tuple[str, str],
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(urls, tmp_path_factory, WORKERS="2")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            _, auth = register_and_login(client)
            tag = unique("metric")
            assert client.post("/api/v1/tweet", json={"msg": f"#{tag}"}, headers=auth).status_code == 201
        url = f"{server.url}/api/v1/search-tweets"
        # a new connection each, until both workers answered 5
        searches = from_every_worker(lambda: httpx.get(url, params={"tag": tag}, headers=auth), each=5)
        assert {r.status_code for r in searches} == {200}
        n = len(searches)
        for i in range(3):
            assert httpx.get(f"{server.url}/no/such/{unique()}/{i}", timeout=10).status_code == 404
        # each worker flushes its counts every second: wait until the sum holds them all (the 404s
        # last: a worker that answered one and has not flushed since is not in the sum yet)
        def counted() -> bool:
            samples = scrape(server.url)
            return total(samples["search_cache_total"]) == n and \
                total(samples["http_requests_total"], route="unmatched", status="404") == 3
        wait_until(counted, what="every search and every 404 counted")
        scrapes = [scrape(server.url) for _ in range(6)]
    finally:
        server.stop()
    for samples in scrapes:
        requests = samples["http_requests_total"]
        assert total(requests, route="api/v1/search-tweets", method="GET", status="200") == n
        assert total(requests, route="api/v1/tweet", method="POST", status="201") == 1
        assert total(requests, route="unmatched", status="404") == 3
        assert not [key for key in requests if any("no/such" in v for _, v in key)]  # no raw paths
        assert total(samples["search_cache_total"]) == n
        assert total(samples["http_request_duration_seconds_count"], route="api/v1/search-tweets") == n
        assert total(samples["db_pool_connections"]) >= 2  # one pool per worker, each at least 1
        assert total(samples["redis_breaker_open_workers"]) == 0
        assert total(samples["db_pool_acquires_total"]) >= 3  # register, login, post at least
        assert 0 <= total(samples["db_pool_wait_seconds_total"]) < 5


def test_metrics_can_be_switched_off(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(urls, tmp_path_factory, METRICS_ENABLED="false")
    try:
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 404
        assert httpx.get(f"{server.url}/ping", timeout=10).status_code == 200
    finally:
        server.stop()
