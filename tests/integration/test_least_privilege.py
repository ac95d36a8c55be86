"""The service runs as a role that can only read and write rows (sql/roles/app_grants.sql, the
grants compose gives it): every endpoint works, and the role cannot change or empty the schema."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import httpx
import pytest

from service.settings import ROOT
from tests.conftest import register_and_login, start_server, unique


async def app_role(owner_url: str) -> str:
    password = secrets.token_urlsafe(16)
    conn = await asyncpg.connect(owner_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'simple_twitter_app'")
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(f"{verb} ROLE simple_twitter_app LOGIN PASSWORD '{password}'")
        await conn.execute((ROOT / "sql" / "roles" / "app_grants.sql").read_text())
    finally:
        await conn.close()
    return owner_url.replace(owner_url.split("//")[1].split("@")[0], f"simple_twitter_app:{password}")


async def schema_changes_refused(url: str) -> list[str]:
    refused = []
    conn = await asyncpg.connect(url)
    try:
        for statement in ("DROP TABLE tweets", "TRUNCATE tweets", "DELETE FROM users",
                          "ALTER TABLE tweets ADD COLUMN x int", "CREATE TABLE t (x int)"):
            try:
                await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                refused.append(statement)
    finally:
        await conn.close()
    return refused


def test_the_service_runs_as_a_row_only_role(urls: tuple[str, str],
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    url = asyncio.run(app_role(urls[0]))
    srv = start_server(urls, tmp_path_factory, DATABASE_URL=url, REDIS_URL=urls[1], MIGRATE_ON_START="false")
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _, auth = register_and_login(c)  # insert, select, and the rehash update path
            tag = unique("lp")
            assert c.post("/api/v1/tweet", json={"msg": f"#{tag} hi"}, headers=auth).status_code == 201
            r = c.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
            assert r.status_code == 200 and r.json()["pagination"]["total"] == 1
            assert c.get("/api/v1/me", headers=auth).status_code == 200
            assert c.get("/health").json()["postgres"] == "up"
    finally:
        srv.stop()
    assert len(asyncio.run(schema_changes_refused(url))) == 5
