"""The in-process cache's invalidation feed, against the real Redis."""

import time

import httpx

from tests.conftest import register_and_login, start_server, unique


def test_other_worker_sees_post_despite_long_local_ttl(urls: tuple[str, str], tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    # A 60 s local TTL: only the pub/sub invalidation can make the other worker see the post.
    srv = start_server(urls, tmp_path_factory, WORKERS="2", LOCAL_CACHE_TTL="60")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
        tag = unique("lw")
        httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} first"}, headers=auth)
        for _ in range(20):  # warm both workers' local caches
            httpx.get(f"{srv.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
        new = httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} second"}, headers=auth)
        new_id = new.json()["data"]["id"]
        time.sleep(0.05)
        for _ in range(20):
            s = httpx.get(f"{srv.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
            assert s.json()["data"][0]["id"] == new_id and s.json()["pagination"]["total"] == 2
    finally:
        srv.stop()
