"""A server worker that dies (kill -9, out of memory) is started again: the service does not carry
on with fewer workers until someone restarts it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from typing import Any, cast

import asyncpg
import httpx
import psutil
import pytest

from bench.harness import children_connected_to
from service.settings import Settings
from tests.conftest import from_every_worker, register_and_login, start_server, unique


def wait_for_workers(root: psutil.Process, port: int, n: int, seconds: float) -> set[int]:
    """Wait until n server workers hold a Redis connection (each keeps its invalidation feed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = children_connected_to(root.pid, port)
        if len(pids) == n:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"expected {n} serving workers, have {children_connected_to(root.pid, port)}")


def test_a_killed_worker_is_started_again(settings: Settings, urls: tuple[str, str],
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(urls, tmp_path_factory, WORKERS="2")
    try:
        root = psutil.Process(srv.pid)
        before = wait_for_workers(root, settings.stack_redis_port, 2, 15)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        after = wait_for_workers(root, settings.stack_redis_port, 2, 20)
        assert victim not in after and len(after - before) == 1
        for _ in range(20):
            assert httpx.get(srv.url + "/ping", timeout=5).status_code == 200
    finally:
        srv.stop()


def worker_serving(root: psutil.Process, server_port: int, client_port: int) -> int:
    """The worker process holding the server side of the client's connection."""
    for child in root.children(recursive=True):
        try:
            for c in child.net_connections("tcp"):
                if c.laddr.port == server_port and c.raddr and c.raddr.port == client_port:
                    return child.pid
        except psutil.Error:
            continue
    raise AssertionError("no worker holds the connection")


def test_a_post_whose_worker_died_before_its_cache_update_shows(
        settings: Settings, urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The worker that served a post is killed after the commit, before the cache update (held
    back 5 s by the fault hook). The tag's page is cached in Redis and in both workers'
    processes (60 s); the post must show in search within seconds, not after the TTL."""
    srv = start_server(urls, tmp_path_factory, WORKERS="2", LOCAL_CACHE_TTL="60",
                       FAULT_POST_CACHE_DELAY_MS="5000")
    try:
        root = psutil.Process(srv.pid)
        wait_for_workers(root, settings.stack_redis_port, 2, 15)
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)
        tag = unique("wd")
        first = httpx.post(srv.url + "/api/v1/tweet", json={"msg": f"one #{tag}"}, headers=auth, timeout=10)
        assert first.status_code == 201
        time.sleep(5.5)  # its cache update, held back 5 s by the fault hook, is done

        def search() -> dict[str, Any]:
            r = httpx.get(srv.url + "/api/v1/search-tweets", params={"tag": tag}, headers=auth, timeout=10)
            assert r.status_code == 200, r.text
            return cast(dict[str, Any], r.json())

        def answer() -> httpx.Response:
            r = httpx.get(srv.url + "/api/v1/search-tweets", params={"tag": tag}, headers=auth, timeout=10)
            assert r.status_code == 200 and r.json()["pagination"]["total"] == 1, r.text
            return r

        from_every_worker(answer)  # new connections until both workers keep the page in process
        body = json.dumps({"msg": f"two #{tag}"}).encode()
        with socket.create_connection(("127.0.0.1", srv.port)) as raw:
            raw.sendall(b"POST /api/v1/tweet HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + f"Authorization: {auth['Authorization']}\r\n".encode()
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            victim = worker_serving(root, srv.port, raw.getsockname()[1])
            deadline = time.monotonic() + 5
            while not asyncio.run(count(urls[0], tag)) == 2:  # committed, cache update pending
                assert time.monotonic() < deadline, "the post never committed"
                time.sleep(0.05)
            os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while search()["pagination"]["total"] != 2:
            assert time.monotonic() - killed < 5, "the post stayed invisible after its worker died"
            time.sleep(0.1)
        page = search()
        assert page["data"][0]["msg"].startswith("two") and page["pagination"]["total"] == 2
    finally:
        srv.stop()


async def count(dsn: str, tag: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM tweets WHERE $1 = ANY(tags)", tag))
    finally:
        await conn.close()
