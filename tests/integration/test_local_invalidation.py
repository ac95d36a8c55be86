"""The in-process cache's invalidation across workers, against the real Redis."""

import httpx
import pytest

from tests.conftest import from_every_worker, register_and_login, start_server, unique


def test_other_worker_sees_post_despite_long_local_ttl(urls: tuple[str, str],
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """A 60 s local TTL: only the invalidation (the shared slot on this host, the feed across
    hosts) can make the other worker see the post, and it must from the post's 201 on: no wait."""
    srv = start_server(urls, tmp_path_factory, WORKERS="2", LOCAL_CACHE_TTL="60")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
        tag = unique("lw")

        def search() -> httpx.Response:  # a new connection each: the workers share them
            return httpx.get(f"{srv.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth, timeout=10)

        first = httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} first"}, headers=auth)
        assert first.status_code == 201
        from_every_worker(search)  # both workers keep the page in process
        new = httpx.post(f"{srv.url}/api/v1/tweet", json={"msg": f"#{tag} second"}, headers=auth)
        new_id = new.json()["data"]["id"]
        for s in from_every_worker(search):
            assert s.json()["data"][0]["id"] == new_id and s.json()["pagination"]["total"] == 2
    finally:
        srv.stop()
