"""The service through a real PgBouncer in transaction mode, and with a real streaming replica
made by pg_basebackup (ops/pgbouncer.py, ops/replica.py), on the test stack."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import psutil
import pytest

from bench.scrape import scrape, total
from ops import pgbouncer, postgres
from ops import replica as standby
from service.db.pool import PooledConnection, PoolStats, create_pool
from service.settings import Settings
from tests.conftest import (
    Server,
    post_while_locked,
    register_and_login,
    start_server,
    tag_ids,
    unique,
    wait_until,
)


@pytest.fixture(scope="module")
def pooler(settings: Settings, urls: tuple[str, str]) -> Iterator[str]:
    url = pgbouncer.start(settings)
    yield url
    pgbouncer.stop(settings)


@pytest.fixture(scope="module")
def replica(settings: Settings, urls: tuple[str, str]) -> Iterator[str]:
    url = standby.start(settings)
    yield url
    standby.stop(settings)


def server_connections(settings: Settings) -> int:
    """PgBouncer's connections to PostgreSQL now (its process's sockets to PostgreSQL's port)."""
    pidfile = (settings.data_dir / "pg").resolve() / "pgbouncer" / "pgbouncer.pid"
    bouncer = psutil.Process(int(pidfile.read_text().split()[0]))
    return sum(1 for c in bouncer.net_connections("tcp")
               if c.raddr and c.raddr.port == settings.stack_pg_port and c.status == psutil.CONN_ESTABLISHED)


def prepared_on_servers(settings: Settings) -> int:
    """The statements PgBouncer has prepared on its server connections, all told."""
    return sum(int(row["prepared_statements"]) for row in pgbouncer.show(settings, "SERVERS"))


@pytest.mark.parametrize("prepared", [True, False],
                         ids=["statements-kept-by-pgbouncer", "each-prepared-anew"])
def test_many_clients_through_pgbouncer_share_its_few_server_connections(
        settings: Settings, pooler: str, urls: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory, prepared: bool) -> None:
    """Two workers with 40 connections each (80 clients of PgBouncer), 64 requests at a time of
    every kind, with and without the cache: every answer right, and PostgreSQL never sees more
    than PgBouncer's pool. With DB_POOLER_PREPARED_STATEMENTS the workers' named statements are
    prepared by PgBouncer on whichever server connection runs them (and no search calls its
    function); without, none is."""
    pgbouncer.stop(settings)  # its server connections, and the statements prepared there, start afresh
    assert pgbouncer.start(settings) == pooler
    srv = start_server(urls, tmp_path_factory, DATABASE_URL=pooler, DB_TRANSACTION_POOLER="true",
                       DB_POOLER_PREPARED_STATEMENTS=str(prepared).lower(),
                       MIGRATE_DATABASE_URL=urls[0], WORKERS="2", DB_POOL_MIN="40", DB_POOL_MAX="40")
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(server_connections(settings))
            stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
        tag = unique("pooled")

        async def load() -> tuple[list[int], set[int]]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=20,
                                         limits=httpx.Limits(max_connections=64)) as c:
                async def one(i: int) -> tuple[int, int | None]:
                    if i % 3 == 0:
                        r = await c.post("/api/v1/tweet", json={"msg": f"#{tag} {i} ünïcode"}, headers=auth)
                        return r.status_code, r.json()["data"]["id"] if r.status_code == 201 else None
                    params: dict[str, str | int] = {"tag": unique("cold")}
                    if i % 3 == 1:
                        params = {"tag": tag, "page": 1 + i % 4, "page_size": 5}
                    r = await c.get("/api/v1/search-tweets", params=params, headers=auth)
                    return r.status_code, None
                results = await asyncio.gather(*(one(i) for i in range(600)))
            return [s for s, _ in results], {i for _, i in results if i is not None}

        statuses, posted = asyncio.run(load())
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            page = c.get("/api/v1/search-tweets", params={"tag": tag, "page_size": 100}, headers=auth).json()
        kept = prepared_on_servers(settings)
    finally:
        stop.set()
        watcher.join()
        srv.stop()
    assert (kept > 0) == prepared, kept
    assert set(statuses) == {200, 201}, sorted(set(statuses))
    assert page["pagination"]["total"] == len(posted) == 200
    assert [t["id"] for t in page["data"]] == sorted(posted, reverse=True)[:100]
    assert 0 < max(seen) <= pgbouncer.POOL_SIZE, max(seen)


WRAPPED = "each use of a connection sets its own"  # what a worker logs when it wraps every use


@pytest.mark.parametrize(("statement_timeout", "wrapped"), [("4", False), ("0.5", True)],
                         ids=["alone-the-poolers-timeout", "in-a-transaction-that-sets-it"])
def test_the_statement_timeout_holds_through_pgbouncer(
        settings: Settings, pooler: str, urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory,
        statement_timeout: str, wrapped: bool) -> None:
    """No session settings survive a transaction pooler. PgBouncer's server connections carry
    the stack's DB_STATEMENT_TIMEOUT (connect_query), so statements go alone under it; a service
    wanting a shorter one than they carry wraps each use in a transaction that sets it. Either way
    a post held past it is a 503, and nothing is written."""
    assert settings.db.db_statement_timeout == float(statement_timeout) or wrapped  # what the pooler carries
    srv = start_server(urls, tmp_path_factory, DATABASE_URL=pooler, DB_TRANSACTION_POOLER="true",
                       MIGRATE_DATABASE_URL=urls[0], DB_STATEMENT_TIMEOUT=statement_timeout)
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
            tag = unique("pooledlock")
            r, landed = asyncio.run(post_while_locked(urls[0], srv.url, auth, tag))
            assert r.status_code == 503 and r.json()["code"] == "serviceUnavailable", r.text
            assert landed == 0
            assert c.post("/api/v1/tweet", json={"msg": f"#{tag} later"}, headers=auth).status_code == 201
    finally:
        srv.stop()
    assert (WRAPPED in srv.log_path.read_text()) == wrapped


def crash_postgres(settings: Settings) -> None:
    """SIGKILL to the postmaster, as a crash would: returns once it and its backends are gone."""
    pid = postgres.pid(settings)
    assert pid is not None
    postmaster = psutil.Process(pid)
    backends = postmaster.children(recursive=True)
    postmaster.kill()
    _, alive = psutil.wait_procs([postmaster, *backends], timeout=30)
    assert not alive, alive


def test_postgres_crashing_behind_pgbouncer_is_a_503_and_posts_return_within_seconds(
        settings: Settings, pooler: str, urls: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """PostgreSQL killed -9 behind PgBouncer: PgBouncer refuses ("server login has been failing"),
    which is a 503 with Retry-After, not a 500; once PostgreSQL is back, posts are back within
    5 seconds (PgBouncer's own retry interval is 15 s by default); nothing acknowledged is lost."""
    srv = start_server(urls, tmp_path_factory, DATABASE_URL=pooler, DB_TRANSACTION_POOLER="true",
                       MIGRATE_DATABASE_URL=urls[0], WORKERS="2")
    tag = unique("bounced")
    posted: set[int] = set()

    def post(c: httpx.Client, auth: dict[str, str], i: int) -> httpx.Response:
        r = c.post("/api/v1/tweet", json={"msg": f"#{tag} {i}"}, headers=auth)
        if r.status_code == 201:
            posted.add(r.json()["data"]["id"])
        return r

    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
            assert post(c, auth, 0).status_code == 201
            crash_postgres(settings)
            try:
                down = [post(c, auth, i) for i in range(1, 41)]
                health = c.get("/health")
            finally:
                postgres.start(settings)
            back = time.monotonic()
            after: Counter[int] = Counter()
            while time.monotonic() - back < 15 and after[201] < 20:
                after[post(c, auth, 100 + sum(after.values())).status_code] += 1
            recovered = time.monotonic() - back
            assert Counter(r.status_code for r in down) == {503: 40}, [r.text for r in down]
            assert all(r.headers["retry-after"] and r.json()["code"] == "serviceUnavailable" for r in down)
            assert health.status_code == 503 and health.json()["postgres"] == "down", health.text
            assert set(after) <= {201, 503}, after
            assert after[201] == 20 and recovered < 5, (after, recovered)
            assert c.get("/health").status_code == 200
            assert posted <= tag_ids(c, tag, auth)
    finally:
        srv.stop()


def replica_reads(srv: Server) -> tuple[float, float]:
    samples = scrape(srv.url)
    return total(samples["db_replica_reads_total"]), total(samples["db_replica_behind_reads_total"])


def test_searches_read_the_replica_and_never_miss_a_post_acknowledged_before(
        replica: str, urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every search here reads the database (cache off), right after the post it must show; then
    with the replica's replay paused, the primary answers and nothing is missed either."""
    srv = start_server(urls, tmp_path_factory, REPLICA_DATABASE_URL=replica, CACHE_ENABLED="false")

    async def pause(paused: bool) -> None:
        conn = await asyncpg.connect(replica)
        try:
            await conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")
        finally:
            await conn.close()

    def post_then_search(c: httpx.Client, auth: dict[str, str], tag: str, n: int) -> None:
        for i in range(n):
            r = c.post("/api/v1/tweet", json={"msg": f"#{tag} {i}"}, headers=auth)
            assert r.status_code == 201
            first = c.get("/api/v1/search-tweets", params={"tag": tag, "page_size": 1}, headers=auth)
            assert first.json()["data"][0]["id"] == r.json()["data"]["id"], i

    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
            tag = unique("replica")
            post_then_search(c, auth, tag, 30)
            for _ in range(20):  # reads with no post just before: the replica has caught up
                assert c.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth).status_code == 200
            from_replica, behind = replica_reads(srv)
            assert from_replica >= 20  # the replica does answer
            asyncio.run(pause(True))
            try:
                post_then_search(c, auth, tag, 10)  # the replica cannot have these: the primary answers
                assert replica_reads(srv)[1] >= behind + 10
            finally:
                asyncio.run(pause(False))
            post_then_search(c, auth, tag, 5)
    finally:
        srv.stop()


def test_searches_go_on_when_the_replica_is_down(
        settings: Settings, replica: str, urls: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(urls, tmp_path_factory, REPLICA_DATABASE_URL=replica, CACHE_ENABLED="false")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
            tag = unique("nore")
            assert c.post("/api/v1/tweet", json={"msg": f"#{tag}"}, headers=auth).status_code == 201
            standby.stop(settings)
            for _ in range(10):
                r = c.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
                assert r.status_code == 200 and len(r.json()["data"]) == 1
            standby.start(settings)
    finally:
        srv.stop()


def lag_bytes(primary: str, replica: str) -> int:
    """WAL bytes the primary has written that the replica has not replayed."""
    async def lsns() -> int:
        p, r = await asyncpg.connect(primary), await asyncpg.connect(replica)
        try:
            current = await p.fetchval("SELECT pg_current_wal_lsn()::text")
            diff = await r.fetchval(
                "SELECT pg_wal_lsn_diff(($1::text)::pg_lsn, pg_last_wal_replay_lsn())", current)
            return int(diff)
        finally:
            await p.close()
            await r.close()
    return asyncio.run(lsns())


def test_a_replica_cut_off_from_the_primary_never_answers_a_search_a_201_changed(
        settings: Settings, replica: str, urls: tuple[str, str],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The replica's streaming connection cut (its packets dropped both ways, as a partition would):
    it falls behind by every post, yet each search right after a post's 201 shows the post (the
    primary answers what the replica has not replayed: checked by LSN), and once healed the replica
    answers again."""
    srv = start_server(urls, tmp_path_factory, REPLICA_DATABASE_URL=replica, CACHE_ENABLED="false")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
            tag = unique("cutreplica")

            def post_then_search(n: int) -> None:
                for i in range(n):
                    r = c.post("/api/v1/tweet", json={"msg": f"#{tag} {i}"}, headers=auth)
                    assert r.status_code == 201
                    first = c.get("/api/v1/search-tweets", params={"tag": tag, "page_size": 1}, headers=auth)
                    assert first.json()["data"][0]["id"] == r.json()["data"]["id"], i

            post_then_search(3)
            behind = replica_reads(srv)[1]
            with standby.cut_off(settings):
                post_then_search(15)
                assert lag_bytes(urls[0], replica) > 0  # a real lag: the replica did not replay them
                assert replica_reads(srv)[1] >= behind + 15
            wait_until(lambda: lag_bytes(urls[0], replica) <= 0, 30, "the replica caught up")
            before = replica_reads(srv)[0]
            for _ in range(10):
                assert c.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth).status_code == 200
            assert replica_reads(srv)[0] > before  # it answers again
    finally:
        srv.stop()


@pytest.mark.parametrize("pooled", [True, False], ids=["through-pgbouncer-closed", "direct-kept"])
def test_a_use_cancelled_midway_through_the_pooler_closes_its_connection(
        settings: Settings, pooler: str, urls: tuple[str, str], pooled: bool) -> None:
    """A request cancelled while its statement runs (its client gone): through the pooler the
    connection is closed, so no server connection of PgBouncer's is left linked to it (or
    mid-transaction) for the others to wait on; a direct one goes back to the pool, where asyncpg
    has cancelled the statement."""
    dsn = pooler if pooled else urls[0]
    env = settings.replaced(db_transaction_pooler=pooled, db_pooler_prepared_statements=pooled,
                            db_pool_min=1, db_pool_max=1)

    async def scenario() -> tuple[bool, int]:
        pool = await create_pool(env, dsn)
        try:
            raw: list[asyncpg.Connection] = []

            async def use() -> None:
                async with PooledConnection(pool, 2.0, None, PoolStats(), lean=True, pooled=pooled) as conn:
                    raw.append(conn._con)  # type: ignore[attr-defined]
                    await conn.fetchval("SELECT pg_sleep(3)")

            task = asyncio.create_task(use())
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            closed = raw[0].is_closed()
            started = time.monotonic()
            async with PooledConnection(pool, 2.0, None, PoolStats(), lean=True, pooled=pooled) as conn:
                assert await conn.fetchval("SELECT 1") == 1
            return closed, int(1000 * (time.monotonic() - started))
        finally:
            await pool.close()

    closed, next_use_ms = asyncio.run(scenario())
    assert closed == pooled
    assert next_use_ms < 1000, next_use_ms  # the next use neither waits for the sleep nor times out
    if pooled:
        wait_until(lambda: all(r["state"] != "active" for r in pgbouncer.show(settings, "SERVERS")), 5,
                   "PgBouncer's server connections all idle")
