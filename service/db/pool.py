"""One asyncpg pool per worker, and the errors that mean "PostgreSQL is not reachable"."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from time import monotonic, perf_counter
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from service.settings import Settings

log = logging.getLogger(__name__)
# The asyncpg minors the lean pool, the deadline watch and the idle sweep (which use asyncpg's
# private names, below) were written and tested against; under another they are off.
TESTED = ("0.32",)


def supported(version: str = asyncpg.__version__) -> bool:
    return ".".join(version.split(".")[:2]) in TESTED

# Raised while PostgreSQL is down, restarting, refusing connections or too slow: answered 503.
# Only connection loss and the server's own refusals: a bare OSError or asyncpg InterfaceError
# can be a programming error (a wrong argument count, a connection used twice at once), which
# must be a logged 500, not a silent 503.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    socket.gaierror,  # the database host name does not resolve
    TimeoutError,  # connect, acquire or command timeout
    asyncpg.exceptions.ConnectionDoesNotExistError,  # closed in the middle of an operation
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    asyncpg.QueryCanceledError,  # statement_timeout: the database is too slow right now
    # Seen when the server dies mid-operation ("cannot switch to state 12; another operation is
    # in progress", MagicStack/asyncpg#784 and #1069): the connection is broken, not the request.
    asyncpg.exceptions.InternalClientError,
)
# asyncpg says "connection is closed" and "pool is closing" with a bare InterfaceError.
LOST_CONNECTION = ("connection is closed", "connection was closed", "pool is closing", "pool is closed")


def unavailable(exc: BaseException) -> bool:
    """Does this error mean PostgreSQL cannot be reached (503) rather than a bug (500)?"""
    if isinstance(exc, UNAVAILABLE):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and any(m in str(exc) for m in LOST_CONNECTION)


# PgBouncer's answers to a client whose statement waited for a server and never had one (its
# janitor.c and objects.c, 1.18 to 1.24): nothing was sent to PostgreSQL. A server lost while the
# statement ran ("server conn crashed?", "query timeout") is another matter: it may have committed.
LOGIN_FAILING = "server login has been failing"  # the start of it: 1.24 adds the cached failure
NEVER_SENT = ("query_wait_timeout", "query_timeout", "server shutting down")  # whole messages


def outcome_unknown(exc: BaseException) -> bool:
    """After a write was handed to the connection, does this error leave it unknown whether it
    committed? An error PostgreSQL itself answered (a statement timeout, a constraint) means rolled
    back, as does PgBouncer's refusal of a statement no server ever received (LOGIN_FAILING,
    NEVER_SENT); a lost connection (or PgBouncer losing its server while the statement ran, also
    SQLSTATE class 08) may have followed the commit."""
    if not unavailable(exc):
        return False
    if not isinstance(exc, asyncpg.PostgresError):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError):
        # The pooler answers, then closes: asyncpg raises "connection was closed in the middle of
        # operation: <its answer>", the answer itself kept as the cause (seen in CI's pooled chaos).
        said = exc.__cause__ if isinstance(exc.__cause__, asyncpg.PostgresError) else exc
        message = str(said)
        return not (message.startswith(LOGIN_FAILING) or message in NEVER_SENT)
    return False


async def _keep_session(conn: object) -> None:
    """Pool release hook that skips asyncpg's reset query (a round trip per release).

    Safe here because nothing in the service changes session state: no SET, LISTEN, advisory
    locks or cursors are left on a pooled connection, and transactions are always closed.
    """


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """The worker's pool to `dsn`. With USE_DEADLINE_WATCH, statements carry no timer of their own:
    the worker's Deadlines cuts what runs past DB_COMMAND_TIMEOUT (its connections must be lent
    through PooledConnection with it)."""
    # Enforced by the server, so a slow query frees its backend and its pool connection (the
    # client-side command_timeout alone leaves the query running). Through a transaction pooler
    # a session setting would stay on whichever server connection took it: each transaction sets
    # it instead (begin_statement).
    session = {} if settings.db.db_transaction_pooler else {
        "statement_timeout": str(int(settings.db.db_statement_timeout * 1000)),
        **({"plan_cache_mode": "force_generic_plan"} if settings.tuning.use_generic_plans else {})}

    async def pool(min_size: int) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=settings.pool_max,
            command_timeout=None if settings.tuning.use_deadline_watch else settings.db.db_command_timeout,
            # With the lean pool, IdleSweep closes idle connections instead of a timer per release.
            max_inactive_connection_lifetime=(0 if settings.tuning.use_lean_pool
                                              else settings.db.db_idle_lifetime),
            server_settings=session,
            # A pooler hands each transaction any server connection: no named statements, unless
            # it prepares them there itself (DB_POOLER_PREPARED_STATEMENTS).
            statement_cache_size=1024 if settings.db_prepared_statements else 0,
            reset=None if settings.db.db_pool_reset else _keep_session)

    try:
        return await pool(settings.pool_min)
    except UNAVAILABLE as exc:
        # Start anyway with a lazy pool: requests get 503 until PostgreSQL is back, then the
        # pool connects by itself. A worker that refused to start would need a restart.
        log.warning("PostgreSQL unreachable at start-up (%s); will connect on demand", exc)
        return await pool(0)


# Errors after which a connection may be mid-operation: it is closed, never reused.
BROKEN = (asyncpg.exceptions.InternalClientError, asyncpg.InterfaceError, TimeoutError)


def begin_statement(settings: Settings) -> str | None:
    """What opens each use of a connection through a transaction-mode pooler (one round trip to
    open, one to commit), else None: a transaction that sets the statement timeout for itself, as
    no session setting survives a transaction there."""
    if not settings.db.db_transaction_pooler:
        return None
    return f"BEGIN; SET LOCAL statement_timeout = {int(settings.db.db_statement_timeout * 1000)}"


SERVER_TIMEOUT = "SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'"  # milliseconds


async def opener(settings: Settings, pool: asyncpg.Pool) -> str | None:
    """begin_statement, or None where each statement can go alone (USE_POOLER_BARE_STATEMENTS):
    the pooler's server connections carry a statement timeout within DB_STATEMENT_TIMEOUT. asyncpg
    ends a statement's Parse/Describe with Flush, not Sync, so the pooler keeps its Bind/Execute on
    the same server connection without a transaction around it. Checked once (PgBouncer sets the
    same connect_query on every server connection); unknown (PostgreSQL away) means wrapped."""
    begin = begin_statement(settings)
    if begin is None or not settings.tuning.use_pooler_bare_statements:
        return begin
    try:
        async with asyncio.timeout(settings.db.db_acquire_timeout):
            server_ms = await pool.fetchval(SERVER_TIMEOUT)
    except Exception as exc:
        log.warning("the pooler's statement timeout could not be read (%r): each use of a connection "
                    "sets its own", exc)
        return begin
    if 0 < server_ms <= settings.db.db_statement_timeout * 1000:
        return None
    log.warning("the pooler's server connections have statement_timeout = %s ms (want 1 to %d): each use "
                "of a connection sets its own, two more round trips (set PgBouncer's connect_query, as "
                "ops/pgbouncer.py does)", server_ms, int(settings.db.db_statement_timeout * 1000))
    return begin


@dataclass(slots=True)
class PoolStats:
    """One worker's use of its PostgreSQL pools, read by /metrics: built with the worker's
    resources (service/resources.py) and held by them, so two apps in one process count apart."""

    waiting: int = 0  # requests waiting for a connection now
    acquires: int = 0  # connections lent (or timed out waiting), ever
    wait_seconds: float = 0.0  # seconds spent waiting for them, in all
    replica_reads: int = 0  # searches that missed the cache answered by the replica
    replica_behind_reads: int = 0  # ... and by the primary, the replica being behind or away


class PooledConnection:
    """pool.acquire(), except that a connection an error may have left mid-operation is closed
    instead of going back to the pool, where the next request would inherit its broken state.
    With begin (a transaction pooler), its use is one transaction: committed when it ends well,
    rolled back otherwise. With pooled (any transaction pooler), a use cancelled midway (its client
    gone) closes the connection: handed back, it could sit mid-transaction or between a statement's
    Parse and its Sync, keeping a server connection of the pooler's few from every other client
    until the statement timeout (or for good). With lean (USE_LEAN_POOL), an idle live connection
    is taken and given back without asyncpg's per-use timeout context and shielded task
    (take_idle, give_back).
    A class rather than a generator-based context manager: it is on every request's path."""

    __slots__ = ("_begin", "_conn", "_lean", "_pool", "_pooled", "_stats", "_timeout", "_watch")

    def __init__(self, pool: asyncpg.Pool, timeout: float, begin: str | None, stats: PoolStats,
                 lean: bool = False, watch: Deadlines | None = None, pooled: bool = False) -> None:
        self._pool = pool
        self._timeout = timeout
        self._begin = begin
        self._stats = stats
        self._lean = lean
        self._watch = watch
        self._pooled = pooled or begin is not None

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        stats = self._stats
        # Only while nobody waits: a request waiting for a connection gets the next one given back.
        taken = take_idle(self._pool) if self._lean and not stats.waiting else None
        if taken is not None:
            stats.acquires += 1
            self._conn = taken
        else:
            stats.waiting += 1
            began = perf_counter()
            try:  # asyncio.timeout, not acquire(timeout=): asyncpg's wait_for runs the wait as a task
                async with asyncio.timeout(self._timeout):
                    self._conn = await self._pool.acquire()
            finally:
                stats.waiting -= 1
                stats.acquires += 1
                stats.wait_seconds += perf_counter() - began
        if self._watch is not None:
            self._watch.lend(self._conn)
        if self._begin is not None:
            try:
                await self._conn.execute(self._begin)
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, None)
                raise
        return self._conn

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        conn = self._conn
        try:
            if kind is not None and (issubclass(kind, BROKEN) or (
                    self._pooled and issubclass(kind, asyncio.CancelledError))):
                _terminate(conn)
            elif self._begin is not None and not _released(conn) and conn.is_in_transaction():
                await conn.execute("COMMIT" if kind is None else "ROLLBACK")
        except BaseException:
            _terminate(conn)  # never hand back a connection whose transaction is unknown
            if kind is None:  # a failed COMMIT: the request must not be acknowledged
                raise
        finally:
            if self._watch is not None:
                self._watch.back(conn)
            if not (self._lean and give_back(conn)):
                await self._pool.release(conn)


class Deadlines:
    """DB_COMMAND_TIMEOUT kept by one watch per worker (USE_DEADLINE_WATCH) instead of asyncpg's
    command_timeout, which sets and cancels a timer for every statement: each connection lent is
    noted with its deadline, and every `period` seconds any still lent past it is terminated, so
    its statement fails as on a lost connection (503; a post's outcome unknown, as after asyncpg's
    timeout). A use of a connection is a statement or two, so the deadline counts from the lending;
    a statement is cut between DB_COMMAND_TIMEOUT and `period` later."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.period = min(0.5, timeout / 4)
        self._lent: dict[int, tuple[float, PoolConnectionProxy[asyncpg.Record]]] = {}

    def lend(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._lent[id(conn)] = (monotonic() + self.timeout, conn)

    def back(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._lent.pop(id(conn), None)

    def cut_overdue(self) -> int:
        now = monotonic()
        overdue = [conn for deadline, conn in self._lent.values() if deadline < now]
        for conn in overdue:
            self._lent.pop(id(conn), None)
            log.warning("a PostgreSQL connection lent for over %g s (DB_COMMAND_TIMEOUT): closed",
                        self.timeout)
            _terminate(conn)
        return len(overdue)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.cut_overdue()


class IdleSweep:
    """Closes pooled connections left idle for `lifetime` seconds, down to each pool's minimum, as
    asyncpg's max_inactive_connection_lifetime does, without its timer armed on every release and
    cancelled on every acquire: every `period` seconds it looks at the idle connections and closes
    (with asyncpg's own method) those that ran no statement since it first saw them idle `lifetime`
    ago. A connection is closed between `lifetime` and `lifetime + period` after its last use. With
    USE_LEAN_POOL, whose pools are made with asyncpg's timer off."""

    def __init__(self, pools: list[asyncpg.Pool], lifetime: float) -> None:
        self.lifetime = lifetime
        self.period = min(10.0, lifetime / 4)
        self._pools = pools
        # holder -> (idle since, (its connection, statements run)) at the last look
        self._idle: dict[int, tuple[float, tuple[int, int]]] = {}

    def sweep(self) -> int:
        """Close what has been idle too long; how many were closed."""
        now, idle, closed = monotonic(), {}, 0
        for pool in self._pools:
            for holder in pool._holders:  # type: ignore[attr-defined]
                con = holder._con
                if holder._in_use is not None or con is None or con.is_closed():
                    continue
                mark = (id(con), con._protocol.queries_count)
                since, seen = self._idle.get(id(holder), (now, mark))
                if seen != mark:  # used since the last look
                    since = now
                if now - since >= self.lifetime:
                    holder._deactivate_inactive_connection()  # keeps the pool's minimum
                    closed += con.is_closed()
                idle[id(holder)] = (since, mark)
        self._idle = idle
        return closed

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.sweep()


# The lean pool path: what asyncpg 0.32's Pool._acquire / PoolConnectionHolder.acquire and
# Pool.release / PoolConnectionHolder.release do for an idle, live connection of the current
# generation, done at once. Every other case (none idle, a connection to open or to renew, a
# setup hook, a transaction left open, a cancellation in progress, the pool closing, asyncpg's
# reset query configured) takes asyncpg's own path. asyncpg is pinned (constraints.txt);
# tests/integration/test_pool.py checks each case against the real pool.

def take_idle(pool: asyncpg.Pool) -> PoolConnectionProxy[asyncpg.Record] | None:
    """An idle live connection, lent as pool.acquire() lends it; None when there is none."""
    inner: Any = pool  # asyncpg's internals, untyped
    queue = inner._queue
    if queue.empty() or queue._getters or inner._closing or not inner._initialized:
        return None
    holder = queue.get_nowait()
    con = holder._con
    if con is None or con.is_closed() or holder._generation != inner._generation or holder._setup is not None:
        queue.put_nowait(holder)  # asyncpg's acquire opens or renews it
        return None
    holder._maybe_cancel_inactive_callback()
    holder._proxy = proxy = PoolConnectionProxy(holder, con)
    holder._in_use = inner._loop.create_future()
    holder._timeout = None
    return proxy


def give_back(proxy: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Return a lent connection to the pool as pool.release() does, if nothing about it needs a
    round trip or a wait (then False: pool.release() must)."""
    inner: Any = proxy  # asyncpg's internals, untyped
    con = inner._con
    if con is None:
        return True  # already back (asyncpg took it when it closed)
    holder = inner._holder
    pool = holder._pool
    protocol = con._protocol
    if (pool._reset is not _keep_session or pool._closed or holder._in_use is None or con.is_closed()
            or protocol.queries_count >= holder._max_queries or holder._generation != pool._generation
            or protocol._is_cancelling() or protocol.is_in_transaction() or con._top_xact is not None):
        return False
    con._on_release()
    holder._timeout = None
    con._listeners.clear()
    con._log_listeners.clear()
    holder._release()
    holder._setup_inactive_callback()
    return True


def _released(conn: PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Has the pool taken this connection back already? asyncpg does so by itself when the
    connection closes under it (a server or PgBouncer hanging up): every call on it then raises."""
    return conn._con is None  # type: ignore[attr-defined]


def _terminate(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    if not _released(conn):
        conn.terminate()
