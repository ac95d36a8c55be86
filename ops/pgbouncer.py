"""PgBouncer in transaction mode in front of the embedded PostgreSQL, on STACK_PG_PORT + 1
(1.21 or newer, keeping the service's prepared statements: ops/pgbouncer_build.py), for the tests,
`make cluster POOLER=1` and the benchmarks. Its files live beside the cluster's
(DATA_DIR/pg/pgbouncer)."""

from __future__ import annotations

import math
import os
import subprocess

from ops import pgbouncer_build, postgres
from ops.process import read_pid, terminate
from ops.system import StackError, give_to_server_user, port_open, server_user, wait_port, write_private
from service.settings import Settings

POOL_SIZE = 20  # server connections PgBouncer opens to PostgreSQL, whatever the clients number
# Prepared statements PgBouncer keeps per server connection (each prepared there once, on first
# use): the service's few dozen distinct statements, with room for psql and the harness.
PREPARED_STATEMENTS = 256


def port(settings: Settings) -> int:
    return settings.stack_pg_port + 1


def url(settings: Settings) -> str:
    return postgres.url_at(settings, port(settings))


def start(settings: Settings, pool_size: int = POOL_SIZE) -> str:
    """PgBouncer in transaction mode, POOL_SIZE server connections at most; returns its URL (the
    service needs DB_TRANSACTION_POOLER=true behind it)."""
    binary = pgbouncer_build.binary()
    directory = postgres.data_root(settings) / "pgbouncer"
    if port_open(port(settings)):
        return url(settings)
    directory.mkdir(mode=0o700, exist_ok=True)
    give_to_server_user(directory)
    # PgBouncer logs in to PostgreSQL with the password from this file, and checks clients
    # against it (SCRAM on both sides).
    users = directory / "userlist.txt"
    write_private(users, f'"{postgres.DB_USER}" "{postgres.password(settings)}"\n')
    config = directory / "pgbouncer.ini"
    # Every server connection carries the service's statement timeout, so that each statement can
    # go alone (USE_POOLER_BARE_STATEMENTS) instead of in a transaction that sets it, and with
    # USE_GENERIC_PLANS the plan mode the service's direct connections set for themselves.
    timeout = f"SET statement_timeout = {int(settings.db.db_statement_timeout * 1000)}" + (
        "; SET plan_cache_mode = force_generic_plan" if settings.tuning.use_generic_plans else "")
    server = f"host=127.0.0.1 port={settings.stack_pg_port} dbname={postgres.DB_NAME}"
    write_private(config, f"""[databases]
{postgres.DB_NAME} = {server} connect_query='{timeout}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port(settings)}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {users}
pool_mode = transaction
# The service's prepared statements (DB_POOLER_PREPARED_STATEMENTS=true) prepared on whichever
# server connection runs them: one round trip per statement and a plan kept, as direct.
max_prepared_statements = {PREPARED_STATEMENTS}
# The stack's user may read PgBouncer's SHOW lists (show()), as the tests and benchmarks do.
stats_users = {postgres.DB_USER}
default_pool_size = {pool_size}
max_client_conn = 5000
server_reset_query =
server_check_delay = 10
# After PostgreSQL fails to accept a login (down, restarting), PgBouncer refuses every client
# for this long before trying again (15 s by default): the service answers 503 meanwhile, so
# one second brings posts back within a second or two of PostgreSQL's return.
server_login_retry = 1
# A client whose transaction waits for a server longer than this gets an error (the service: 503)
# instead of waiting up to 120 s: while PostgreSQL is down, a client queued before the logins
# began to fail waited until the service cut it at DB_COMMAND_TIMEOUT, past a client's patience
# (a chaos run's post got no answer). The service waits as long for a connection of its own pool.
query_wait_timeout = {max(1, math.ceil(settings.db.db_acquire_timeout))}
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
""")
    for path in (users, config):
        give_to_server_user(path)
    user = server_user()
    subprocess.run([binary, "-d", *(["-u", user] if user else []), str(config)],
                   check=True, capture_output=True, cwd="/")
    wait_port(port(settings), "PgBouncer")
    return url(settings)


def pid(settings: Settings) -> int | None:
    link = settings.data_dir / "pg"
    return read_pid(link.resolve() / "pgbouncer" / "pgbouncer.pid") if link.exists() else None


def show(settings: Settings, what: str) -> list[dict[str, str]]:
    """PgBouncer's own `SHOW <what>` (SERVERS, POOLS, STATS...) from its console, a dict a row."""
    env = {**os.environ, "PGPASSWORD": postgres.password(settings)}
    done = subprocess.run([postgres.binary("psql"), "-h", "127.0.0.1", "-p", str(port(settings)), "-U",
                           postgres.DB_USER, "-d", "pgbouncer", "-AF", "\t", "-P", "footer=off", "-c",
                           f"SHOW {what}"], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise StackError(f"PgBouncer's SHOW {what}: {done.stderr}")
    head, *rows = done.stdout.splitlines()
    return [dict(zip(head.split("\t"), row.split("\t"), strict=True)) for row in rows]


def stop(settings: Settings) -> None:
    terminate(pid(settings), grace=10)
