"""The facts of a measurement run, recorded when it is measured and stored with its results, so a
report only renders them: machine, versions, commit, and the durability settings in force."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ops.system import ensure_tool
from service.settings import ROOT

PACKAGES = ["sanic", "uvloop", "asyncpg", "redis", "hiredis", "orjson", "fastapi", "uvicorn", "locust",
            "pytest-benchmark", "py-spy"]
# PostgreSQL settings that trade durability for speed: recorded so a reader sees none was traded.
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines()
                      if x.startswith("MemTotal")).split()[1])
    return {"cpu": model, "cores": str(os.cpu_count()), "memory": f"{mem_kb / 2**20:.1f} GiB",
            "os": platform.platform()}


def versions(database_url: str, redis_url: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"

    async def server_versions() -> None:
        import asyncpg
        import redis.asyncio as aredis

        conn = await asyncpg.connect(database_url)
        out["postgresql"] = (await conn.fetchval("SHOW server_version")).split()[0]
        for name in DURABILITY:
            out[f"postgresql {name}"] = await conn.fetchval(f"SHOW {name}")
        await conn.close()
        client = aredis.Redis.from_url(redis_url)
        out["redis-server"] = (await client.info("server"))["redis_version"]
        await client.aclose()

    try:
        asyncio.run(server_versions())
    except Exception as exc:
        out["servers"] = f"not reachable ({exc!r})"
    # wrk is installed on first use (bench/harness.py): a run's facts are read before its first load.
    wrk = subprocess.run([ensure_tool("wrk", "wrk"), "--version"], capture_output=True, text=True, check=False)
    out["wrk"] = (wrk.stdout + wrk.stderr).split()[1] if wrk.stdout or wrk.stderr else "n/a"
    return out


def commit() -> str:
    """HEAD, marked when the service or harness code differs from it (a run of uncommitted code)."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=False).stdout.strip()
    # Not the results and plots: an earlier stage of the same run (make bench) has just written them.
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "service", "ops", "bench", "sql", ":!bench/results",
                            ":!bench/plots"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return sha + (" (with uncommitted changes)" if dirty else "")


def changed_since(commit: str | None) -> str | None:
    """The last commit that changed service/ after `commit` (a short sha, marked or not), if any;
    None also when `commit` is not in this history."""
    sha = (commit or "").split()[0] if commit else ""
    if not sha:
        return None
    out = subprocess.run(["git", "log", "-1", "--format=%h", f"{sha}..HEAD", "--", "service"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or None if out.returncode == 0 else None


def facts(database_url: str, redis_url: str, **extra: Any) -> dict[str, Any]:
    """Everything a reader needs to know about where and how a run was measured."""
    return {"machine": machine(), "versions": versions(database_url, redis_url), "commit": commit(), **extra}
