import asyncio

import asyncpg

from service.db.migrate import migrate, migration_files
from tests.conftest import unique


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


def test_a_tweet_written_without_its_json_gets_it(urls: tuple[str, str]) -> None:
    """A writer that does not supply a tweet's JSON (an older service mid-deploy, psql) gets the
    same bytes the post statement stores (sql/006: the trigger and tweet_json)."""
    async def scenario() -> tuple[str, str]:
        conn = await asyncpg.connect(urls[0])
        try:
            async with conn.transaction():
                user_id = await conn.fetchval("INSERT INTO users (username, full_name, password_hash) "
                                              "VALUES ($1, 'Old Writer', 'x') RETURNING id", unique("old_"))
                row = await conn.fetchrow("INSERT INTO tweets (user_id, msg, tags) VALUES ($1, $2, $3) "
                                          "RETURNING id, body", user_id, 'é "q" #x', ["x"])
                assert row is not None
                built = await conn.fetchval(
                    "SELECT tweet_json(t.id, t.msg, t.user_id, u.username, t.created_at, t.tags) "
                    "FROM tweets t JOIN users u ON u.id = t.user_id WHERE t.id = $1", row["id"])
                raise Rollback((row["body"], built))
        except Rollback as done:
            return done.args[0]  # type: ignore[no-any-return]
        finally:
            await conn.close()

    stored, built = asyncio.run(scenario())
    assert stored == built and '"msg":"é \\"q\\" #x"' in stored


class Rollback(Exception):
    """Leaves the test's rows out of the shared test database."""
