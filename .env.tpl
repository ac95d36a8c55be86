# Simple Twitter settings. Copy to .env (cp .env.tpl .env); real environment variables win.
# Every value below is the default. Booleans: true/false. A bad value stops start-up, naming it.

# development | production | test. Production refuses to start without a strong TOKEN_SECRET.
ENV=development
HOST=127.0.0.1
PORT=2080
# Sanic worker processes (Sanic's worker manager): auto is one per CPU this process may use.
WORKERS=auto
# A worker that dies (killed, out of memory) is started again by a live sibling (WORKERS > 1).
RESTART_DEAD_WORKERS=true
# Local data (embedded stack, development token secret). Git-ignored.
DATA_DIR=.data

# Leave both empty to use the embedded PostgreSQL and Redis that the project starts itself.
# e.g. postgresql://user:password@127.0.0.1:5432/simple_twitter
DATABASE_URL=
# Migrations need the tables' owner; the service can run as a role that only reads and writes
# rows (sql/roles/app_grants.sql). Empty: migrations use DATABASE_URL.
MIGRATE_DATABASE_URL=
# Apply pending migrations when the service starts (false where a separate step does it).
MIGRATE_ON_START=true
# e.g. redis://127.0.0.1:6379/0
REDIS_URL=
# true when REDIS_URL is a node of a Redis Cluster (the others are found from it). The lean
# client (USE_WIRE_CLIENT) is single-node only: redis-py's cluster client is used instead.
REDIS_CLUSTER=false
# true when DATABASE_URL is a transaction-mode pooler (PgBouncer): statement cache off (unless
# DB_POOLER_PREPARED_STATEMENTS); the statement timeout from the pooler's server connections or
# set by each use (docs/SCALING.md).
# Migrations then need MIGRATE_DATABASE_URL (a direct connection) or MIGRATE_ON_START=false.
DB_TRANSACTION_POOLER=false
# The pooler keeps protocol-level prepared statements in transaction mode (PgBouncer 1.21+ with
# max_prepared_statements > 0; `make cluster POOLER=1` runs one): statements stay prepared as on a
# direct connection, one round trip each. False is right for any pooler, a round trip more each.
DB_POOLER_PREPARED_STATEMENTS=false
# A streaming replica for searches that miss the cache; read only once it has replayed every
# commit acknowledged before the search began, else the primary answers. Empty: primary only.
REPLICA_DATABASE_URL=
# Ports of the embedded stack (loopback only, deliberately not the standard ones, and below
# Linux's ephemeral range 32768-60999, so no outgoing connection can hold them by chance).
STACK_PG_PORT=25432
STACK_REDIS_PORT=26379
STACK_REDIS_MAXMEMORY=256mb

# Connections all workers together may open (PostgreSQL default max_connections is 100).
DB_CONNECTION_BUDGET=80
DB_POOL_MIN=1
# 0 = DB_CONNECTION_BUDGET / WORKERS
DB_POOL_MAX=0
DB_COMMAND_TIMEOUT=5.0
# Server-side limit per statement (PostgreSQL cancels it; the request gets 503 + Retry-After).
DB_STATEMENT_TIMEOUT=4.0
# asyncpg runs a reset query on every pool release (a round trip); the service leaves no session
# state behind, so it is skipped unless this is true.
DB_POOL_RESET=false
DB_ACQUIRE_TIMEOUT=2.0
# A pooled connection idle this many seconds is closed (down to DB_POOL_MIN).
DB_IDLE_LIFETIME=300.0

# redis-py timeouts and retries (its defaults can hang for seconds on a dead socket).
REDIS_SOCKET_TIMEOUT=0.25
REDIS_CONNECT_TIMEOUT=0.25
REDIS_RETRIES=1
REDIS_MAX_CONNECTIONS=64
# Circuit breaker: open after this many consecutive Redis failures, probe again after N seconds.
BREAKER_FAILURES=3
BREAKER_RESET_SECONDS=1.0

# Tag search cache.
CACHE_ENABLED=true
CACHE_PREFIX=st
CACHE_TTL_SECONDS=600
# TTL is spread by +/- this fraction so entries do not all expire together.
CACHE_TTL_JITTER=0.1
# Newest tweets kept per tag; deeper pages are read from PostgreSQL.
CACHE_TAG_SIZE=1000

# Per-worker in-process cache of search responses (seconds; 0 = off). Kept coherent by Redis
# pub/sub invalidation; the TTL bounds staleness only if an invalidation message were lost.
LOCAL_CACHE_TTL=1.0
# Memory bound per worker, in bytes (responses, keys and bookkeeping); oldest out first.
LOCAL_CACHE_BYTES=33554432
# Invalidation feed heartbeat (seconds). Silent longer than FEED_STALE_AFTER, a worker bypasses
# its caches until the feed is back and the cache repaired. FEED_STALE_AFTER < REDIS_SOCKET_TIMEOUT.
FEED_PING_INTERVAL=0.05
FEED_STALE_AFTER=0.2
# Quiet this long (seconds), the feed follows on a new connection rather than waiting out the old
# one's backed-off TCP retransmissions after a network cut; 0: waits on the same connection.
FEED_RECONNECT_AFTER=0.4
# The second invalidation channel: a post whose cache update failed (its instance cut from Redis)
# is announced through PostgreSQL (NOTIFY) and waits FEED_STALE_AFTER before its 201; a worker
# answers from its caches only while it hears PostgreSQL. NOTICES_DATABASE_URL: where it listens
# (empty: DATABASE_URL; behind DB_TRANSACTION_POOLER, MIGRATE_DATABASE_URL: LISTEN needs a session).
DATABASE_NOTICES=true
NOTICES_DATABASE_URL=

# Token signing secret: required (32+ random characters) in production. In development it is
# generated once into DATA_DIR/token_secret when left empty.
TOKEN_SECRET=
TOKEN_TTL_SECONDS=3600
# Verified tokens remembered per worker (0 = verify the signature on every request).
TOKEN_CACHE_SIZE=10000
# Threads hashing passwords (argon2id) per worker: bounds concurrent hashing.
HASH_THREADS=2
# Hashes admitted beyond the threads, waiting, per worker: past it a login or registration gets
# 503 with Retry-After at once, so a flood cannot queue work that delays every later login.
HASH_QUEUE=16
# Hashing threads run this much nicer than the event loop (0-19; 0 = same priority), so a login
# flood slows logins, not searches and posts (or Redis replies, which would open the breaker).
HASH_NICENESS=10
# Largest request body in bytes (413 above it).
REQUEST_MAX_SIZE=65536
# Seconds for a whole request (headers and body) to arrive from its first byte, however it
# trickles (408 after), and before an idle
# keep-alive connection is closed: slow or idle clients cannot hold connections for ever.
REQUEST_TIMEOUT=10.0
KEEP_ALIVE_TIMEOUT=30.0
# Connections one worker holds; beyond it a new one replaces the longest-idle keep-alive
# connection, or is answered 503 (Retry-After) when none is idle. Capped by the open-file limit.
WORKER_MAX_CONNECTIONS=4096
# On SIGTERM, keep serving this long with keep-alive off (clients move to other connections),
# then stop accepting and let requests in flight finish.
SHUTDOWN_DRAIN_SECONDS=0.5
ACCESS_LOG=false
# GET /metrics in Prometheus format, added up over every worker.
METRICS_ENABLED=true

# Tunings, each switchable so `make bench` can measure it.
USE_GC_FREEZE=true
USE_UVLOOP=true
USE_ORJSON=true
USE_HIREDIS=true
USE_PIPELINE=true
# Cached searches answered at the protocol from the in-process page, before Sanic builds a request
# (service/fastpath.py); off with ACCESS_LOG=true, which only the framework writes.
USE_FAST_HITS=true
# Every other plain search with an already verified token answered at the protocol too (a task
# calling the timeline as the handler does; errors are still Sanic's to answer); off with ACCESS_LOG.
USE_LEAN_SEARCH=true
# A post with an already verified token and its whole body in hand answered at the protocol too
# (a task calling the timeline as the handler does; bad input still Sanic's to answer); off with
# ACCESS_LOG.
USE_LEAN_POST=true
# An idle PostgreSQL connection taken from the pool and given back at once, without asyncpg's
# per-use timeout context and shielded release task (asyncpg's own path whenever anything is odd),
# and connections idle for DB_IDLE_LIFETIME closed by a sweep instead of a timer per release.
USE_LEAN_POOL=true
# Through DB_TRANSACTION_POOLER: each statement sent alone when the pooler's server connections
# already carry a statement timeout within DB_STATEMENT_TIMEOUT (PgBouncer's connect_query; checked
# at start-up); off, or none there: each use a transaction that sets it (2 more round trips).
USE_POOLER_BARE_STATEMENTS=true
# Through DB_TRANSACTION_POOLER without DB_POOLER_PREPARED_STATEMENTS: a search calls
# search_rows()/search_page(), whose query keeps its plan on each PostgreSQL connection, instead of
# a query planned anew every time.
USE_POOLER_SEARCH_FUNCTIONS=true
# Each direct connection's prepared statements run their generic plan (plan_cache_mode =
# force_generic_plan): PostgreSQL's default plans a search anew on every execution, probing the
# index's ends each time (most of a search's PostgreSQL time, growing with the data).
USE_GENERIC_PLANS=true
# Posts arriving while POST_BATCH_SLOTS post statements of a worker run wait and go together, up to
# POST_BATCH_MAX in one statement (one round trip, transaction and WAL flush); 1: each post alone.
POST_BATCH_MAX=64
POST_BATCH_SLOTS=2
# The cache updates of posts answered together (a batch's) go to Redis as one script call with one
# feed message; false: one call and one message per post.
POST_UPDATES_TOGETHER=true
# A post is answered only once every worker of every instance has dropped its in-process pages of
# the post's tags (at most 2 x FEED_STALE_AFTER); false: a search on another instance in the instant
# after the 201 can still miss the post.
POST_WAITS_FOR_WORKERS=true
# DB_COMMAND_TIMEOUT kept by one watch per worker over the connections lent (a connection lent past
# it is closed: its statement fails as on a lost connection) instead of a timer per statement.
USE_DEADLINE_WATCH=true
# Each response's request id, metrics and drain done as the protocol writes its head, instead of by
# a Sanic response middleware, and a whole response's head written in one step (same bytes, headers
# and counts; cheaper per request).
FINISH_IN_PROTOCOL=true
# Cache commands on the request path through the lean pipelined client instead of redis-py.
USE_WIRE_CLIENT=true
USE_SINGLEFLIGHT=true
# Read a tag's version in the same Redis round trip as its page: a miss needs no extra round trip.
CACHE_READ_VERSION=true
# Read each tweet's JSON as stored when it was written; false builds it per row per read.
STORED_TWEET_JSON=true
# Deliberate busy work per request on one path (microseconds), only to prove that the CI
# performance check catches a slower path (make bench-detect). Leave at 0.
SLOWDOWN_HIT_US=0
SLOWDOWN_MISS_US=0
SLOWDOWN_BYPASS_US=0
SLOWDOWN_POST_US=0
# Fault injection for tests only (always 0 in real use): milliseconds between a post's commit
# and its cache update, to kill a worker in that window.
FAULT_POST_CACHE_DELAY_MS=0
