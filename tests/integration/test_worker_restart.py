"""A server worker that dies (kill -9, out of memory) is started again: the service does not carry
on with fewer workers until someone restarts it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil
import pytest

from service.settings import Settings
from tests.conftest import start_server


def serving_workers(root: psutil.Process, redis_port: int) -> set[int]:
    """Children holding a connection to Redis: every server worker keeps its invalidation feed."""
    pids = set()
    for child in root.children(recursive=True):
        try:
            if any(c.raddr and c.raddr.port == redis_port for c in child.net_connections("tcp")):
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def wait_for_workers(root: psutil.Process, port: int, n: int, seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = serving_workers(root, port)
        if len(pids) == n:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"expected {n} serving workers, have {serving_workers(root, port)}")


def test_a_killed_worker_is_started_again(settings: Settings, urls: tuple[str, str],
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(urls, tmp_path_factory, WORKERS="2")
    try:
        root = psutil.Process(srv.proc.pid)
        before = wait_for_workers(root, settings.stack_redis_port, 2, 15)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        after = wait_for_workers(root, settings.stack_redis_port, 2, 20)
        assert victim not in after and len(after - before) == 1
        for _ in range(20):
            assert httpx.get(srv.url + "/ping", timeout=5).status_code == 200
    finally:
        srv.stop()
