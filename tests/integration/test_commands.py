"""The commands a newcomer types first: make's list, make run's banner, make reset."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from ops import stack
from service.db.migrate import migrate
from service.settings import ROOT, Settings
from tests.conftest import TEST_ENV, free_port, start_server


def test_bare_make_lists_every_command() -> None:
    out = subprocess.run(["make", "-s"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         check=True).stdout
    for target in ("run", "all", "test", "locust", "loadtest", "bench", "bench-check", "status", "stop",
                   "reset", "clean"):
        assert any(line.split()[:1] == [target] for line in out.splitlines()), (target, out)


def test_run_says_where_the_service_and_swagger_are(urls: tuple[str, str],
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = start_server(urls, tmp_path_factory)
    try:
        banner = srv.log_path.read_text()
        assert f"{srv.url} (1 worker): Swagger UI {srv.url}/swagger" in banner, banner[:500]
    finally:
        srv.stop()


def reset(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops", "reset", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def test_reset_asks_first_then_starts_empty(tmp_path: Path) -> None:
    env = {**os.environ, **TEST_ENV, "DATA_DIR": str(tmp_path / "data"),
           "STACK_PG_PORT": str(free_port()), "STACK_REDIS_PORT": str(free_port())}
    settings = Settings.from_env(env)

    async def users(add: bool) -> int:
        dsn = stack.urls(settings)[0]
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            if add:
                await conn.execute("INSERT INTO users (username, full_name, password_hash) "
                                   "VALUES ('keep_me', 'K', 'x')")
            return int(await conn.fetchval("SELECT count(*) FROM users"))
        finally:
            await conn.close()

    try:
        stack.up(settings)
        assert asyncio.run(users(add=True)) == 1
        refused = reset(env)  # not a terminal and no --yes: nothing is deleted
        assert refused.returncode == 2 and "YES=1" in refused.stderr
        stack.up(settings)
        assert asyncio.run(users(add=False)) == 1
        done = reset(env, "--yes")
        assert done.returncode == 0 and "deleted the dev stack" in done.stdout, done
        stack.up(settings)
        assert asyncio.run(users(add=False)) == 0
    finally:
        stack.destroy(settings)
