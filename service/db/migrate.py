"""Apply sql/NNN_*.sql in order, once each, recording what was applied.

An advisory lock makes concurrent runners (several workers, a second `migrate`) safe: the second
waits, then finds nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parent.parent.parent / "sql"
LOCK_ID = 0x5717_7E12

CREATE_LOG = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
APPLIED = "SELECT version FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (version) VALUES ($1)"


def migration_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    return sorted(p for p in sql_dir.glob("[0-9]*.sql"))


async def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the versions applied by this call."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        try:
            await conn.execute(CREATE_LOG)
            done = {r["version"] for r in await conn.fetch(APPLIED)}
            applied = []
            for path in migration_files(sql_dir):
                if path.stem in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(RECORD, path.stem)
                applied.append(path.stem)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
    finally:
        await conn.close()
