"""The embedded stack's life cycle: a start never trusts half of a previous one, and destroy
(make clean) removes everything, the cluster kept under /var/tmp included."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops import postgres, stack
from ops.system import StackError
from service.settings import Settings
from tests.conftest import free_port


@pytest.fixture
def private_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A stack in a 0700 directory (as a mktemp checkout is), on ports of its own."""
    home = tmp_path_factory.mktemp("private")
    home.chmod(0o700)
    settings = Settings.from_env({"ENV": "test", "DATA_DIR": str(home / ".data"),
                                  "STACK_PG_PORT": str(free_port()), "STACK_REDIS_PORT": str(free_port())})
    yield settings
    stack.destroy(settings)


def connects(settings: Settings) -> bool:
    async def probe() -> bool:
        conn = await asyncpg.connect(stack.urls(settings)[0], timeout=10)
        try:
            return bool(await conn.fetchval("SELECT true"))
        finally:
            await conn.close()

    return asyncio.run(probe())


def cluster(settings: Settings) -> Path:
    return (settings.data_dir / "pg").resolve()


def test_destroy_then_start_again(private_settings: Settings) -> None:
    stack.up(private_settings)
    assert connects(private_settings)
    root = cluster(private_settings)
    if os.geteuid() == 0:  # the postgres user cannot enter a 0700 directory: kept outside it
        assert not root.is_relative_to(private_settings.data_dir)
    removed = stack.destroy(private_settings)
    assert not root.exists() and not (private_settings.data_dir / "pg").exists(), removed
    stack.up(private_settings)  # a fresh cluster whose password is known: no password error
    assert connects(private_settings)


def test_a_cluster_without_its_password_is_made_again(private_settings: Settings) -> None:
    stack.up(private_settings)
    root = cluster(private_settings)
    (root / "password").unlink()  # as if the first start had been interrupted before writing it
    (root / "complete").unlink()
    stack.up(private_settings)  # the running half-made server is stopped and replaced
    assert connects(private_settings)


def test_a_taken_port_is_refused_before_anything_is_created(private_settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", private_settings.stack_pg_port))
        squatter.listen()
        with pytest.raises(StackError, match="taken by another server"):
            postgres.start(private_settings)
    link = private_settings.data_dir / "pg"
    assert not (link.exists() and any(link.resolve().iterdir()))
    stack.up(private_settings)  # and once the port is free, the start works
    assert connects(private_settings)
