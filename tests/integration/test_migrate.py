import asyncio

import asyncpg

from service.db.migrate import migrate, migration_files


def test_migrations_idempotent_and_safe_concurrently(urls: tuple[str, str]) -> None:
    async def scenario() -> tuple[list[list[str]], set[str]]:
        results = await asyncio.gather(*(migrate(urls[0]) for _ in range(4)))
        conn = await asyncpg.connect(urls[0])
        try:
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        finally:
            await conn.close()
        return list(results), done

    results, done = asyncio.run(scenario())
    assert results == [[], [], [], []]  # the session already applied everything
    assert done == {p.stem for p in migration_files()}


def test_schema_guards(urls: tuple[str, str]) -> None:
    async def scenario() -> list[str]:
        conn = await asyncpg.connect(urls[0])
        try:
            # Small test tables: ask the planner what the index makes possible.
            await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
            plan = await conn.fetch("EXPLAIN SELECT tweet_id FROM tweet_tags WHERE tag = 'x' "
                                    "ORDER BY tweet_id DESC LIMIT 10")
            errors = []
            for sql in ("INSERT INTO tweet_tags (tag, tweet_id) VALUES ('dup_guard', 1), ('dup_guard', 1)",
                        "INSERT INTO users (username, full_name, password_hash) "
                        "VALUES ('CaseGuard', 'a', 'x'), ('caseguard', 'b', 'y')"):
                try:
                    await conn.execute(sql)
                except asyncpg.UniqueViolationError:
                    errors.append("unique")
            return [str(r[0]) for r in plan] + errors
        finally:
            await conn.close()

    out = asyncio.run(scenario())
    assert out[-2:] == ["unique", "unique"]
    plan = "\n".join(out[:-2])
    assert "Index" in plan and "Sort" not in plan, plan  # newest-first straight from the index
