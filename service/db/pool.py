"""One asyncpg pool per worker, and the errors that mean "PostgreSQL is not reachable"."""

from __future__ import annotations

import logging

import asyncpg

from service.settings import Settings

log = logging.getLogger(__name__)

# Raised while PostgreSQL is down, restarting or refusing connections: answered with 503.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
)


async def _keep_session(conn: object) -> None:
    """Pool release hook that skips asyncpg's reset query (a round trip per release).

    Safe here because nothing in the service changes session state: no SET, LISTEN, advisory
    locks or cursors are left on a pooled connection, and transactions are always closed.
    """


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    async def pool(min_size: int) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=settings.pool_max,
            command_timeout=settings.db_command_timeout, max_inactive_connection_lifetime=300,
            reset=None if settings.db_pool_reset else _keep_session)

    try:
        return await pool(settings.pool_min)
    except UNAVAILABLE as exc:
        # Start anyway with a lazy pool: requests get 503 until PostgreSQL is back, then the
        # pool connects by itself. A worker that refused to start would need a restart.
        log.warning("PostgreSQL unreachable at start-up (%s); will connect on demand", exc)
        return await pool(0)
