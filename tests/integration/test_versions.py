"""The front reads Sanic's private state and the lean pool asyncpg's: under versions they were not
written for (service/http/sanic_side.TESTED, service/db/pool.TESTED) both are off, said in one
warning line, and the service still answers every request as it does with them on."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.process import ServiceProcess
from service.app import internals
from service.settings import Settings
from tests.conftest import TEST_ENV, Server, free_port, register_and_login, start_server, unique, wait_until
from tests.integration.test_fastpath import fast_hits
from tests.integration.test_finishing import REQUESTS, exchange

FAKED = ("24.12.0", "0.29.0")  # a Sanic and an asyncpg the code was not written against
# The service's main process (which picks the protocol and the switches) on the faked versions.
RUN_FAKED = (sys.executable, "-c", "import sanic, asyncpg; "
             f"sanic.__version__, asyncpg.__version__ = {FAKED!r}; "
             "from ops.__main__ import main; raise SystemExit(main(['run']))")
FRONT = ("use_fast_hits", "use_lean_search", "use_lean_post", "finish_in_protocol")
LEAN_POOL = ("use_lean_pool", "use_deadline_watch")


def test_other_versions_turn_the_front_and_the_lean_pool_off(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings()
    with caplog.at_level(logging.WARNING, logger="service.app"):
        assert internals(settings) == settings  # the installed versions are the tested ones
        assert not caplog.records
        faked = internals(settings, *FAKED)
        sanic_only = internals(settings, FAKED[0], "0.32.1")
        asyncpg_only = internals(settings, "25.12.7", FAKED[1])
    assert all(settings.get(name) and not faked.get(name) for name in FRONT + LEAN_POOL)
    assert faked.replaced(**dict.fromkeys(FRONT + LEAN_POOL, True)) == settings  # nothing else changed
    assert not any(sanic_only.get(n) for n in FRONT) and all(sanic_only.get(n) for n in LEAN_POOL)
    assert all(asyncpg_only.get(n) for n in FRONT)
    assert not any(asyncpg_only.get(n) for n in LEAN_POOL)
    assert len(caplog.records) == 3  # one line each
    said = caplog.records[0].getMessage()
    assert "sanic 24.12.0" in said and "USE_LEAN_POOL" in said and "USE_FAST_HITS" in said


class FakedServer(Server):
    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        ServiceProcess.__init__(self, {**TEST_ENV, "PORT": str(self.port)}, log_path, command=RUN_FAKED)
        self.start()


@pytest.fixture(scope="module")
def pair(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    usual = start_server(urls, tmp_path_factory)
    faked = FakedServer(tmp_path_factory.mktemp("faked") / "server.log")
    yield usual, faked
    usual.stop()
    faked.stop()


def test_on_other_versions_the_service_answers_as_with_the_front(pair: tuple[Server, Server]) -> None:
    faked = pair[1]
    log = faked.log_path.read_text()
    assert "sanic 24.12.0 (front written for 25.12), asyncpg 0.29.0 (lean pool for 0.32)" in log, log[-2000:]
    for request in REQUESTS:  # what Sanic answers itself, each on a fresh connection
        (status_a, headers_a, body_a), (status_b, headers_b, body_b) = (exchange(s, request) for s in pair)
        assert (status_a, body_a) == (status_b, body_b), request
        assert set(headers_a) == set(headers_b), request
    with httpx.Client(base_url=faked.url, timeout=10) as client:
        _, auth = register_and_login(client)
        tag = unique("v")
        posted = client.post("/api/v1/tweet", json={"msg": f"ça marche #{tag}"}, headers=auth)
        assert posted.status_code == 201, posted.text
        seen = [client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth) for _ in range(3)]
        assert all(r.status_code == 200 and r.json()["data"][0]["msg"] == f"ça marche #{tag}" for r in seen)
        wait_until(lambda: client.get("/api/v1/search-tweets", params={"tag": tag},
                                      headers=auth).headers["x-cache"] == "HIT", 10, "a cached page")
        assert all(r.headers["x-request-id"] for r in seen)
    assert fast_hits(faked) == 0  # every one of them answered by Sanic
