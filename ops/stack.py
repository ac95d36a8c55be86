"""The embedded default stack: a private PostgreSQL (ops/postgres.py) and Redis
(ops/redis_server.py) under DATA_DIR, with the tiers that may run beside them (PgBouncer, a
replica, a Redis Cluster), brought up, down and away together.

Used only when DATABASE_URL / REDIS_URL are unset. Both listen on 127.0.0.1 on non-standard
ports (STACK_PG_PORT, STACK_REDIS_PORT).
"""

from __future__ import annotations

import dataclasses

from ops import pgbouncer, postgres, redis_cluster, redis_server, replica
from ops.system import port_open
from service.settings import ROOT, Settings

# The project's other embedded stacks, each under .data/<name> on its own ports, so tests,
# benchmarks and the chaos run never touch the dev data (the "run" stack: .data, 25432/26379).
NAMED_STACKS = {"test": (25442, 26389), "bench": (25452, 26399), "chaos": (25462, 26409)}


def named_env(name: str) -> dict[str, str]:
    """The settings that select a named stack (DATA_DIR and its ports)."""
    pg, redis = NAMED_STACKS[name]
    return {"DATA_DIR": str(ROOT / ".data" / name), "STACK_PG_PORT": str(pg), "STACK_REDIS_PORT": str(redis)}


def named(settings: Settings, name: str) -> Settings:
    """settings aimed at a named stack instead of the run stack."""
    pg, redis = NAMED_STACKS[name]
    return dataclasses.replace(settings, data_dir=ROOT / ".data" / name, stack_pg_port=pg,
                               stack_redis_port=redis)


def urls(settings: Settings) -> tuple[str, str]:
    """(DATABASE_URL, REDIS_URL): the configured ones, or the embedded stack's."""
    database = settings.db.database_url or postgres.url_at(settings, settings.stack_pg_port)
    return database, settings.cache.redis_url or redis_server.url_at(settings, settings.stack_redis_port)


def resolve(settings: Settings) -> Settings:
    """The settings the service runs with: DATABASE_URL, REDIS_URL and the token secret filled in
    (the configured ones, or the embedded stack's). Resolved once by whoever starts the service;
    the application itself uses settings.db.database_url and settings.cache.redis_url as they are."""
    database, redis_url = urls(settings)
    return settings.with_secret().replaced(database_url=database, redis_url=redis_url)


def embedded(settings: Settings) -> bool:
    return not (settings.db.database_url and settings.cache.redis_url)


def up(settings: Settings) -> None:
    if not settings.db.database_url:
        postgres.start(settings)
    if not settings.cache.redis_url:
        redis_server.start(settings)


def down(settings: Settings) -> None:
    """Stop the embedded servers and the tiers beside them; their files stay."""
    if not settings.cache.redis_url:
        redis_cluster.stop(settings)
        redis_server.stop(settings)
    if not settings.db.database_url:
        pgbouncer.stop(settings)
        replica.stop(settings)
        postgres.stop(settings)


def destroy(settings: Settings) -> list[str]:
    """Stop the embedded stack and delete everything it created, the cluster kept under /var/tmp
    included. Returns the folders removed."""
    down(settings)
    return [*postgres.remove(settings), *redis_server.remove(settings)]


def status(settings: Settings) -> dict[str, str]:
    pg = "external" if settings.db.database_url else ("up" if port_open(settings.stack_pg_port) else "down")
    rd = "external" if settings.cache.redis_url else \
        ("up" if port_open(settings.stack_redis_port) else "down")
    return {"postgres": pg, "redis": rd, "data_dir": str(settings.data_dir)}
