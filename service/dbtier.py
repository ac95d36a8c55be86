"""The embedded stack's PostgreSQL tier beyond one server: PgBouncer in transaction mode in front
of it, and a streaming replica made by pg_basebackup. Each is started on demand (the tests,
`make cluster POOLER=1 REPLICA=1`, the benchmarks), from Debian's packages and the machine's
PostgreSQL binaries, and lives next to the stack's cluster (under DATA_DIR/pg).

    python -m service stack pooler|replica [--name test]   start one, print its URL
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from service import stack
from service.settings import Settings

POOL_SIZE = 20  # server connections PgBouncer opens to PostgreSQL, whatever the clients number


def pooler_port(settings: Settings) -> int:
    return settings.stack_pg_port + 1


def replica_port(settings: Settings) -> int:
    return settings.stack_pg_port + 2


def _root(settings: Settings) -> Path:
    """The stack's PostgreSQL folder (the DATA_DIR/pg link resolved), started if need be."""
    if not (settings.data_dir / "pg" / "complete").exists() or not stack.port_open(settings.stack_pg_port):
        stack.pg_start(settings)
    return (settings.data_dir / "pg").resolve()


def _own(path: Path) -> None:
    """Owned by the user PostgreSQL runs as (PgBouncer and the replica run as it too)."""
    user = stack._run_as()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


# -- PgBouncer -------------------------------------------------------------------------------

def pooler_url(settings: Settings) -> str:
    password = stack.pg_password(settings)
    return f"postgresql://{stack.DB_USER}:{password}@127.0.0.1:{pooler_port(settings)}/{stack.DB_NAME}"


def pooler_start(settings: Settings, pool_size: int = POOL_SIZE) -> str:
    """PgBouncer on STACK_PG_PORT + 1 in transaction mode, POOL_SIZE server connections at most;
    returns its URL (the service needs DB_TRANSACTION_POOLER=true behind it)."""
    binary = stack.ensure_tool("pgbouncer", "pgbouncer")
    directory = _root(settings) / "pgbouncer"
    port = pooler_port(settings)
    if stack.port_open(port):
        return pooler_url(settings)
    directory.mkdir(mode=0o700, exist_ok=True)
    _own(directory)
    password = stack.pg_password(settings)
    # PgBouncer logs in to PostgreSQL with the password from this file, and checks clients
    # against it (SCRAM on both sides).
    users = directory / "userlist.txt"
    stack._write_private(users, f'"{stack.DB_USER}" "{password}"\n')
    config = directory / "pgbouncer.ini"
    stack._write_private(config, f"""[databases]
{stack.DB_NAME} = host=127.0.0.1 port={settings.stack_pg_port} dbname={stack.DB_NAME}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {users}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 5000
server_reset_query =
server_check_delay = 10
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
""")
    for path in (users, config):
        _own(path)
    subprocess.run([binary, "-d", *(["-u", stack._run_as() or ""] if stack._run_as() else []), str(config)],
                   check=True, capture_output=True, cwd="/")
    stack._wait_port(port, "PgBouncer")
    return pooler_url(settings)


def pooler_stop(settings: Settings) -> None:
    link = settings.data_dir / "pg"
    if link.exists():
        _kill(link.resolve() / "pgbouncer" / "pgbouncer.pid", pooler_port(settings))


# -- streaming replica -------------------------------------------------------------------------

def replica_url(settings: Settings) -> str:
    password = stack.pg_password(settings)
    return f"postgresql://{stack.DB_USER}:{password}@127.0.0.1:{replica_port(settings)}/{stack.DB_NAME}"


def replica_start(settings: Settings) -> str:
    """A hot standby of the stack's PostgreSQL on STACK_PG_PORT + 2, streaming from it; made by
    pg_basebackup the first time. Returns its URL."""
    root = _root(settings)
    data = root / "replica"
    port = replica_port(settings)
    if stack.port_open(port):
        return replica_url(settings)
    user = stack._run_as()
    if not (data / "standby.signal").exists():
        if data.exists():
            shutil.rmtree(data)
        env = {**os.environ, "PGPASSWORD": stack.pg_password(settings)}
        # -R: standby.signal and primary_conninfo, so it starts as a replica of the primary.
        made = subprocess.run([stack.pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p",
                               str(settings.stack_pg_port), "-U", stack.DB_USER, "-D", str(data), "-R",
                               "-X", "stream", "-c", "fast"],
                              user=user, env=env, capture_output=True, text=True, cwd="/", check=False)
        if made.returncode:
            raise stack.StackError(f"pg_basebackup failed: {made.stderr}")
    stack._pg_run([stack.pg_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l",
                   str(root / "replica.log"), "-o", f"-p {port}"], user)
    stack._wait_port(port, "the replica")
    return replica_url(settings)


def replica_stop(settings: Settings) -> None:
    link = settings.data_dir / "pg"
    data = link.resolve() / "replica" if link.exists() else None
    if data is not None and (data / "postmaster.pid").exists():
        stack._pg_run([stack.pg_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)], stack._run_as(),
                      check=False)


def down(settings: Settings) -> None:
    """Stop both where they run (make stop); their files stay with the stack's cluster."""
    pooler_stop(settings)
    replica_stop(settings)


def _kill(pidfile: Path, port: int) -> None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + 10
    while stack.port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)
