"""What each side of the performance check runs on: its own Python environment and its own
database, both made from its own tree (bench/check.py).

Both sides used to run the candidate's virtualenv and schema: a slower dependency pinned in the
candidate, or a migration adding a costly trigger, slowed the baseline alike and the ratio stayed
at 1.0. Now a tree runs on
- a virtualenv built from its own requirements.txt and constraints.txt (runtime packages only),
  kept under .data/bench/venvs by the hash of those files; a tree whose files hash as this
  checkout's runs on this checkout's own environment;
- a database of its own in the bench PostgreSQL server, its schema made by its own sql/ run by
  its own code, its rows by this checkout's seeder (the same data on both sides: the bench seed
  is deterministic), named by the hash of both, kept for later runs and reset before each.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg

from bench.harness import log
from bench.seed import data_only
from service.settings import ROOT

VENVS = ROOT / ".data" / "bench" / "venvs"
ENVIRONMENT_FILES = ("requirements.txt", "constraints.txt")
# The bench seed (deterministic), then the reset that removes what earlier runs posted.
SEED = ("import asyncio, sys\n"
        "from bench.seed import BENCH_SPEC, reset, seed\n"
        "asyncio.run(seed(sys.argv[1], BENCH_SPEC, quiet=True, replace=True))\n"
        "asyncio.run(reset(sys.argv[1]))\n")


class SideError(RuntimeError):
    """A side's environment or database could not be made."""


def digest(tree: Path, paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(tree)).encode() + b"\0")
        h.update(path.read_bytes() if path.exists() else b"(missing)")
        h.update(b"\0")
    return h.hexdigest()[:16]


def environment_key(tree: Path) -> str:
    return digest(tree, [tree / name for name in ENVIRONMENT_FILES])


def database_key(tree: Path) -> str:
    """Its schema (the tree's sql/) and its data (this checkout's seeder)."""
    sql = [p for p in (tree / "sql").rglob("*") if p.is_file()]
    return digest(tree, sql) + digest(ROOT, [ROOT / "bench" / "seed.py"])[:8]


def python_for(tree: Path) -> str:
    """The interpreter of the tree's own environment (made on first use)."""
    key = environment_key(tree)
    if key == environment_key(ROOT):
        return sys.executable
    venv = VENVS / key
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return str(python)
    shutil.rmtree(venv, ignore_errors=True)
    log(f"building the environment of {tree.name[:12]} from its own requirements ({key}; kept for later runs)")
    run([sys.executable, "-m", "venv", str(venv)], ROOT, "venv", limit=120)
    constraints = ["-c", "constraints.txt"] if (tree / "constraints.txt").exists() else []
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", "requirements.txt",
         *constraints], tree, "pip install", limit=900)
    (venv / ".complete").touch()
    return str(python)


def run(cmd: list[str], cwd: Path, what: str, env: dict[str, str] | None = None, limit: float = 300) -> None:
    """One step of making a side, within `limit` seconds: a step that takes longer (a migration's
    trigger firing on every seeded row, a dependency that will not install) fails here, by name,
    instead of running into CI's own timeout."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                              env={**os.environ, **(env or {})}, timeout=limit)
    except subprocess.TimeoutExpired:
        raise SideError(f"{what} in {cwd} did not finish within {limit:g} s") from None
    if done.returncode:
        raise SideError(f"{what} in {cwd} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")


async def _create(admin_dsn: str, name: str) -> bool:
    """Create the database if it does not exist; True when it was made now."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


def database_for(tree: Path, role: str, admin_dsn: str, python: str) -> str:
    """The URL of the tree's own database (made on first use): its schema from its own sql/, run
    by its own code; its data from this checkout's seeder, the same rows on both sides; reset to
    the seed. `role` keeps the two sides apart even when their trees hash alike."""
    import asyncio

    name = f"ck_{role}_{database_key(tree)}"
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    if asyncio.run(_create(admin_dsn, name)):
        log(f"made the {role}'s own database {name}: its own migrations, the bench seed")
    # A Redis URL (unused by migrations) so that no tree starts an embedded Redis of its own.
    env = {"ENV": "development", "DATABASE_URL": dsn, "MIGRATE_DATABASE_URL": dsn,
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    run([python, "-m", "service", "migrate"], tree, f"the {role}'s migrations", env, limit=180)
    run([sys.executable, "-c", SEED, data_only(dsn)], ROOT, f"seeding the {role}'s database", env, limit=300)
    return dsn
