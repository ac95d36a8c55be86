"""Typed settings, read once from the environment.

Every tuning is a switch with a default so the benchmark harness can turn it off and measure it.
A bad value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent

# Secrets that appear in docs, templates or library examples: never valid in production.
KNOWN_SECRETS = frozenset(
    {"", "secret", "changeme", "change-me", "please-change-me", "CHANGE_ME_TO_A_LONG_RANDOM_STRING",
     "your-secret-key", "super-secret", "jwt-secret", "development"}
)
MIN_SECRET_LENGTH = 32


class SettingsError(ValueError):
    """A variable has a value the service cannot run with."""


@dataclass(frozen=True, slots=True)
class Database:
    """PostgreSQL: where, how many connections, and their deadlines."""

    database_url: str = ""
    # Migrations need the tables' owner; the service itself can run as a role that only reads and
    # writes rows (sql/roles/app_grants.sql). Empty: migrate with DATABASE_URL.
    migrate_database_url: str = ""
    # DATABASE_URL points at a transaction-mode pooler (PgBouncer): no session setting survives a
    # transaction there (nor a named prepared statement, unless DB_POOLER_PREPARED_STATEMENTS), so
    # the statement timeout comes from the pooler's server connections, or each use sets its own
    # (USE_POOLER_BARE_STATEMENTS, pool.py); a use cancelled midway closes its connection.
    db_transaction_pooler: bool = False
    # The pooler keeps protocol-level prepared statements in transaction mode (PgBouncer 1.21+ with
    # max_prepared_statements > 0, as ops/pgbouncer.py runs it): the pool keeps its statement cache
    # through it, one round trip per statement and the plan kept, as on a direct connection. Off
    # (any pooler): each statement is prepared anew, a round trip more, and searches call their
    # functions (USE_POOLER_SEARCH_FUNCTIONS). Ignored without DB_TRANSACTION_POOLER.
    db_pooler_prepared_statements: bool = False
    # A streaming replica for searches that miss the cache, used only once it has replayed every
    # commit acknowledged before the search began (service/db/database.py); empty: the primary.
    replica_database_url: str = ""
    # PostgreSQL's default max_connections is 100 (3 reserved for superusers): the pools of all
    # workers together use at most this many, leaving room for psql, migrations and the harness.
    db_connection_budget: int = 80
    db_pool_min: int = 1
    db_pool_max: int = 0  # 0: db_connection_budget // workers, less the notices' session
    db_command_timeout: float = 5.0
    # Enforced by PostgreSQL (statement_timeout): a slow query is cancelled, answered with 503.
    db_statement_timeout: float = 4.0
    db_pool_reset: bool = False  # asyncpg's reset query on every release; off: one round trip less
    db_acquire_timeout: float = 2.0
    # A pooled connection idle this long is closed (down to DB_POOL_MIN), handing PostgreSQL its
    # backend back after a burst: asyncpg's max_inactive_connection_lifetime, or with
    # USE_LEAN_POOL a sweep every quarter of it (at most 10 s) instead of a timer per release.
    db_idle_lifetime: float = 300.0
    # The second invalidation channel (service/cache/notices.py): a post whose cache update failed
    # is announced through PostgreSQL, and a worker answers from its caches only while it hears
    # PostgreSQL (heartbeat every FEED_PING_INTERVAL, trusted FEED_STALE_AFTER past it); such a
    # post waits FEED_STALE_AFTER before its 201. Listening needs a session of its own:
    # NOTICES_DATABASE_URL, empty for DATABASE_URL (behind a transaction pooler, for
    # MIGRATE_DATABASE_URL, PostgreSQL's own address).
    database_notices: bool = True
    notices_database_url: str = ""

    def check(self, workers: int) -> None:
        if self.db_pool_max == 0 and workers > self.db_connection_budget:
            raise SettingsError("WORKERS must not exceed DB_CONNECTION_BUDGET")
        if self.db_pool_max * workers > self.db_connection_budget:
            raise SettingsError("DB_POOL_MAX x WORKERS must stay within DB_CONNECTION_BUDGET")
        if not self.db_idle_lifetime > 0:
            raise SettingsError("DB_IDLE_LIFETIME must be above 0 (seconds)")
        if not 0 < self.db_statement_timeout <= self.db_command_timeout:
            raise SettingsError("DB_STATEMENT_TIMEOUT must be above 0 and at most DB_COMMAND_TIMEOUT")


@dataclass(frozen=True, slots=True)
class Cache:
    """Redis, the shared cache of tag pages, and the in-process pages and their invalidation feed."""

    redis_url: str = ""
    # REDIS_URL is one node of a Redis Cluster: keys hash-tagged per tag, a post's updates one
    # script call per tag in one round trip, the invalidation feed subscribed on every master.
    redis_cluster: bool = False
    # redis-py's defaults wait forever on a dead socket; a cache must fail fast instead.
    redis_socket_timeout: float = 0.25
    redis_connect_timeout: float = 0.25
    redis_retries: int = 1
    redis_max_connections: int = 64
    breaker_failures: int = 3
    breaker_reset_seconds: float = 1.0
    cache_enabled: bool = True
    cache_prefix: str = "st"
    cache_ttl_seconds: int = 600
    cache_ttl_jitter: float = 0.1
    cache_tag_size: int = 1000
    # In-process cache of whole search responses, invalidated by Redis pub/sub; 0 turns it off.
    local_cache_ttl: float = 1.0
    local_cache_bytes: int = 32 * 1024 * 1024
    # The invalidation feed's heartbeat: a PING every feed_ping_interval; silent for longer than
    # feed_stale_after, the worker stops trusting its caches until the feed is back and the cache
    # repaired. Must stay below redis_socket_timeout (see service/cache/feed.py).
    feed_ping_interval: float = 0.05
    feed_stale_after: float = 0.2
    # Quiet this long, the feed follows on a new connection instead of waiting for the old one's
    # backed-off TCP retransmissions after a network cut (0: waits on the same connection).
    feed_reconnect_after: float = 0.4

    def check(self) -> None:
        if self.local_cache_ttl < 0 or self.local_cache_bytes < 1:
            raise SettingsError("LOCAL_CACHE_TTL must be >= 0 and LOCAL_CACHE_BYTES >= 1")
        if self.feed_reconnect_after and self.feed_reconnect_after < self.feed_stale_after:
            raise SettingsError("FEED_RECONNECT_AFTER must be 0 (never) or at least FEED_STALE_AFTER")
        if not 0 <= self.cache_ttl_jitter < 1:
            raise SettingsError("CACHE_TTL_JITTER must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class Http:
    """Requests and connections: sizes, deadlines, bounds, the access log."""

    request_max_size: int = 65536
    # Deadlines: the whole request (headers and body) must arrive within request_timeout of its
    # first byte, however it trickles, and an idle keep-alive connection is closed after
    # keep_alive_timeout, so slow or idle clients cannot hold connections indefinitely.
    request_timeout: float = 10.0
    keep_alive_timeout: float = 30.0
    # Connections one worker holds: beyond it a new one replaces the longest-idle keep-alive
    # connection, or gets 503 when none is idle (service/http/protocol.py). Capped at start by the
    # process's open-file limit, less room for its pools and files.
    worker_max_connections: int = 4096
    access_log: bool = False

    def check(self) -> None:
        if self.request_timeout <= 0 or self.keep_alive_timeout <= 0:
            raise SettingsError("REQUEST_TIMEOUT and KEEP_ALIVE_TIMEOUT must be above 0")


@dataclass(frozen=True, slots=True)
class Tuning:
    """The speed switches: each on by default, each can be switched off and measured (make bench)."""

    # An idle connection taken and given back at once, without asyncpg's per-use timeout context
    # and shielded release task, and idle ones closed by a sweep (service/db/pool.py); off:
    # asyncpg's acquire and release, and its idle timer armed on every release.
    use_lean_pool: bool = True
    # Through DB_TRANSACTION_POOLER, each use of a connection sends its statement alone when the
    # pooler's server connections already carry a statement timeout within DB_STATEMENT_TIMEOUT
    # (checked once per worker at start-up; ops/pgbouncer.py sets it with connect_query): asyncpg
    # keeps a statement's two halves on one server connection (Parse/Describe end with Flush, not
    # Sync). Off, or no such timeout: each use is one transaction setting its own (two more round
    # trips through the pooler: BEGIN; SET LOCAL and COMMIT).
    use_pooler_bare_statements: bool = True
    # Through DB_TRANSACTION_POOLER without DB_POOLER_PREPARED_STATEMENTS, a search that reads
    # PostgreSQL calls search_rows() or search_page() (sql/007_search_functions.sql) instead of
    # sending the query itself: planned anew for every search otherwise, as no prepared statement
    # survives the pooler.
    use_pooler_search_functions: bool = True
    # Each pooled connection's prepared statements run their generic plan (plan_cache_mode =
    # force_generic_plan, a session setting: direct connections only; ops/pgbouncer.py sets it on
    # PgBouncer's server connections). PostgreSQL's default keeps
    # planning the search anew on every execution (its generic cost estimate for `tweet_id < $4`
    # is the higher), and each planning probes the index's ends: most of a search's PostgreSQL
    # time, growing with the data. The generic plan is the same index scans.
    use_generic_plans: bool = True
    # Posts that arrive while POST_BATCH_SLOTS post statements of the worker are running wait, and
    # go together, up to POST_BATCH_MAX in one statement (service/db/posts.py); 1: each post alone.
    post_batch_max: int = 64
    post_batch_slots: int = 2
    # The cache updates of posts answered in the same event-loop tick (a batch's) go to Redis as one
    # script call with one feed message for all (service/cache/batch.py, Together); off: one each.
    post_updates_together: bool = True
    # A post is answered only once every worker of every instance has dropped its in-process pages
    # of the post's tags (each feed answers the post's message; at most 2 x FEED_STALE_AFTER, after
    # which one that has not answered no longer serves its pages): service/cache/acks.py. Off: other
    # instances drop them one Redis hop after the 201, and a search in that instant can miss the post.
    post_waits_for_workers: bool = True
    # DB_COMMAND_TIMEOUT kept by one watch per worker over the connections lent (service/db/pool.py,
    # Deadlines) instead of a timer set and cancelled for every statement; off: asyncpg's own.
    use_deadline_watch: bool = True
    # Once a worker serves, everything it made while starting (modules, the app and its routes, the
    # pools) is moved out of the garbage collector's reach (gc.freeze): each full collection then
    # walks what requests made since, not the ~60k objects that live as long as the worker (measured
    # here: 22-33 ms each, every few seconds under a miss stream, a stall every request in flight waits out).
    use_gc_freeze: bool = True
    use_uvloop: bool = True
    use_orjson: bool = True
    use_hiredis: bool = True
    use_pipeline: bool = True
    # Cached searches answered at the protocol from the in-process page, before Sanic builds a
    # request (service/http/); off: every request through the framework.
    use_fast_hits: bool = True
    # Every other plain search with a verified token answered at the protocol too, by a task that
    # calls the timeline as the handler does (service/http/); off: through Sanic.
    use_lean_search: bool = True
    # A post whose body has arrived whole, with a verified token, answered at the protocol too
    # (service/http/); off: through Sanic.
    use_lean_post: bool = True
    # Each response finished (request id, metrics, drain) as the protocol writes its head, and a
    # whole response's head written in one step (service/http/protocol.py), instead of by a Sanic
    # response middleware and Sanic's header formatting.
    finish_in_protocol: bool = True
    # The cache's request-path commands through the lean pipelined client (service/cache/wire.py)
    # instead of redis-py (which keeps pub/sub, SCAN and administration either way).
    use_wire_client: bool = True
    use_singleflight: bool = True
    # Read a tag's version in the same round trip as its page, so a miss goes straight to the fill.
    cache_read_version: bool = True
    # Read each tweet's JSON as stored when it was written (sql/006); off: build it per read.
    stored_tweet_json: bool = True


@dataclass(frozen=True, slots=True)
class Hooks:
    """Benchmark and test hooks (service/hooks.py): always 0 in real use."""

    # Deliberate extra CPU work per request on one path, in microseconds: only for proving that
    # the CI performance check catches a slower path (bench/detect.py). Always 0 in real use.
    slowdown_hit_us: int = 0
    slowdown_miss_us: int = 0
    slowdown_bypass_us: int = 0
    slowdown_post_us: int = 0
    # Fault injection for tests only: wait this long between a post's commit and its cache update.
    fault_post_cache_delay_ms: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, read once from the environment (NAME for the field name): the service's own, and
    a group each for the database, the cache, HTTP, the speed switches and the hooks."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 2080
    # Sanic worker processes: WORKERS=auto (the default) starts one per CPU this process may run
    # on, as Sanic's fast mode does; the PostgreSQL connection budget is divided among them.
    workers: int = dataclasses.field(default_factory=lambda: cpu_count())
    restart_dead_workers: bool = True  # a server worker that dies is started again by a sibling
    data_dir: Path = ROOT / ".data"
    migrate_on_start: bool = True  # false where a separate step migrates (compose: the migrate service)
    # Below Linux's ephemeral port range (32768-60999): a busy machine's outgoing connections
    # take local ports from that range and once made a stack fail to bind (Address in use).
    stack_pg_port: int = 25432
    stack_redis_port: int = 26379
    stack_redis_maxmemory: str = "256mb"
    token_secret: str = ""
    token_ttl_seconds: int = 3600
    token_cache_size: int = 10000
    hash_threads: int = 2
    hash_queue: int = 16  # hashes waiting for a thread, per worker; beyond it: 503 at once
    hash_niceness: int = 10  # hashing threads' priority below the event loop's (0: the same)
    # On SIGTERM: serve this long with keep-alive off before closing the listening socket (behind
    # a balancer that checks /ready: this long after a check has heard the 503).
    shutdown_drain_seconds: float = 0.5
    # GET /metrics (Prometheus): request counts and latency per route, cache outcomes, pool,
    # breaker and in-process cache gauges, added up over every worker.
    metrics_enabled: bool = True
    db: Database = dataclasses.field(default_factory=Database)
    cache: Cache = dataclasses.field(default_factory=Cache)
    http: Http = dataclasses.field(default_factory=Http)
    tuning: Tuning = dataclasses.field(default_factory=Tuning)
    hooks: Hooks = dataclasses.field(default_factory=Hooks)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def pool_max(self) -> int:
        listener = int(self.db.database_notices and self.cache.cache_enabled)  # each worker's own session
        return self.db.db_pool_max or max(1, self.db.db_connection_budget // self.workers - listener)

    @property
    def db_prepared_statements(self) -> bool:
        """Do the pool's connections keep prepared statements? Direct ones do; through a transaction
        pooler only where it prepares them on its server connections itself."""
        return not self.db.db_transaction_pooler or self.db.db_pooler_prepared_statements

    @property
    def post_deadline_ms(self) -> int:
        """Longest time a post can take from its start to its cache update: waiting for a
        connection, the statement, and a margin. Bounds the repair after a worker died."""
        return int((self.db.db_acquire_timeout + self.db.db_command_timeout + 2) * 1000)

    @property
    def fast_hits(self) -> bool:
        """Are cached searches answered at the protocol? Only where pages are kept in process."""
        return self.tuning.use_fast_hits and self.cache.cache_enabled and self.cache.local_cache_ttl > 0

    @property
    def pool_min(self) -> int:
        return min(self.db.db_pool_min, self.pool_max)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        groups = {name: kind(**_read(kind, environ)) for name, kind in GROUPS.items()}
        settings = cls(**_read(cls, environ), **groups)  # type: ignore[arg-type]
        settings._check()
        return settings

    def replaced(self, **changes: object) -> Settings:
        """These settings with some fields changed, each by its own name, whichever group holds it."""
        groups: dict[str, dict[str, object]] = {}
        top: dict[str, object] = {}
        for name, value in changes.items():
            group = GROUP_OF.get(name)
            (groups.setdefault(group, {}) if group else top)[name] = value
        for group, values in groups.items():
            top[group] = dataclasses.replace(getattr(self, group), **values)
        return dataclasses.replace(self, **top)  # type: ignore[arg-type]

    def notices_url(self) -> str:
        """Where a worker listens for database notices (a session of its own, never the pooler's)."""
        db = self.db
        if db.notices_database_url:
            return db.notices_database_url
        return db.migrate_database_url if db.db_transaction_pooler else db.database_url

    def worker_files(self) -> Path:
        """Files the workers of the service on this port share (metrics, tag generations),
        emptied when it starts."""
        return self.data_dir / "metrics" / str(self.port)

    def with_secret(self) -> Settings:
        """Fill in the token secret: required in production, generated once per data dir otherwise."""
        if self.production:
            return self
        if self.token_secret:
            return self
        return dataclasses.replace(self, token_secret=_local_secret(self.data_dir))

    def require_resolved(self) -> None:
        """The application takes its URLs and secret as given; filling them in is the starter's job."""
        given = (("DATABASE_URL", self.db.database_url),
                 ("REDIS_URL", self.cache.redis_url or not self.cache.cache_enabled),
                 ("TOKEN_SECRET", self.token_secret))
        missing = [name for name, value in given if not value]
        if missing:
            raise SettingsError(f"{', '.join(missing)} not set: resolve the settings first "
                                "(python -m ops run starts the embedded stack and fills in its URLs)")

    def _check(self) -> None:
        if self.env not in ("development", "production", "test"):
            raise SettingsError("ENV must be development, production or test")
        for name in ("port", "stack_pg_port", "stack_redis_port"):
            if not 0 < getattr(self, name) < 65536:
                raise SettingsError(f"{name.upper()} must be a TCP port (1-65535)")
        positive = ("workers", "db_connection_budget", "cache_tag_size", "token_ttl_seconds",
                    "hash_threads", "request_max_size", "cache_ttl_seconds", "breaker_failures",
                    "redis_max_connections", "worker_max_connections")
        for name in positive:
            if self.get(name) < 1:  # type: ignore[operator]
                raise SettingsError(f"{name.upper()} must be at least 1")
        self.db.check(self.workers)
        self.cache.check()
        self.http.check()
        cache = self.cache
        if not 0 < cache.feed_ping_interval < cache.feed_stale_after < cache.redis_socket_timeout:
            raise SettingsError("need 0 < FEED_PING_INTERVAL < FEED_STALE_AFTER < REDIS_SOCKET_TIMEOUT")
        if self.tuning.post_batch_max < 1 or self.tuning.post_batch_slots < 1:
            raise SettingsError("POST_BATCH_MAX and POST_BATCH_SLOTS must be at least 1")
        if self.shutdown_drain_seconds < 0:
            raise SettingsError("SHUTDOWN_DRAIN_SECONDS must be at least 0")
        if not 0 <= self.hash_niceness <= 19:
            raise SettingsError("HASH_NICENESS must be 0-19")
        if self.hash_queue < 0:
            raise SettingsError("HASH_QUEUE must be at least 0")
        if self.db.db_transaction_pooler and self.migrate_on_start and not self.db.migrate_database_url:
            # Migrations hold a session-level advisory lock and use prepared statements: through a
            # transaction pooler neither stays on one server connection.
            raise SettingsError("DB_TRANSACTION_POOLER=true: migrations need a direct connection to "
                                "PostgreSQL: set MIGRATE_DATABASE_URL, or MIGRATE_ON_START=false and "
                                "migrate separately")
        if self.db.database_notices and self.cache.cache_enabled and self.db.db_transaction_pooler and not (
                self.db.notices_database_url or self.db.migrate_database_url):
            raise SettingsError("DATABASE_NOTICES behind DB_TRANSACTION_POOLER needs NOTICES_DATABASE_URL "
                                "(PostgreSQL's own address: LISTEN needs a session)")
        weak = self.token_secret in KNOWN_SECRETS or len(self.token_secret) < MIN_SECRET_LENGTH
        if self.production and weak:
            raise SettingsError(
                f"TOKEN_SECRET must be set to a random string of {MIN_SECRET_LENGTH}+ characters "
                "in production (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')")

    def get(self, name: str) -> object:
        """A setting by its field name, whichever group holds it."""
        group = GROUP_OF.get(name)
        return getattr(getattr(self, group) if group else self, name)


GROUPS: dict[str, type] = {"db": Database, "cache": Cache, "http": Http, "tuning": Tuning, "hooks": Hooks}
GROUP_OF = {field.name: group for group, kind in GROUPS.items() for field in dataclasses.fields(kind)}


def setting_names() -> list[str]:
    """Every variable the service reads (the field names, upper-case)."""
    kinds = [Settings, *GROUPS.values()]
    return [f.name.upper() for kind in kinds for f in dataclasses.fields(kind) if f.name not in GROUPS]


def _read(kind: type, environ: Mapping[str, str]) -> dict[str, object]:
    """The fields of a settings class (not its groups) that the environment sets, parsed."""
    values: dict[str, object] = {}
    for field in dataclasses.fields(kind):
        raw = environ.get(field.name.upper())
        if raw is not None and field.name not in GROUPS:
            values[field.name] = _parse(field.name.upper(), str(field.type), raw.strip())
    return values


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, as taskset or a container's cpuset set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parse(name: str, kind: str, raw: str) -> object:
    if name == "WORKERS" and raw.lower() == "auto":
        return cpu_count()
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw).resolve()
        return raw
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None


def _local_secret(data_dir: Path) -> str:
    """A development secret shared by all workers and restarts: created once, atomically."""
    path = data_dir / "token_secret"
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = data_dir / f".token_secret.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private from the start
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # fails if another process won the race: then use theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def load_settings() -> Settings:
    load_dotenv(ROOT / ".env", override=False)  # real environment variables win over .env
    return Settings.from_env()
