"""The embedded stack beyond one server each: PgBouncer in transaction mode in front of its
PostgreSQL, a streaming replica made by pg_basebackup, and a Redis Cluster of three masters.
Each is started on demand (the tests, `make cluster POOLER=1 REPLICA=1 REDIS_CLUSTER=1`, the
benchmarks), from Debian's packages and the binaries the stack already uses, and lives next to
the stack's own servers (under DATA_DIR/pg and DATA_DIR/redis).
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


SLOT = "simple_twitter_replica"
DROP_SLOT = ("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
             "WHERE slot_name = 'simple_twitter_replica'")


def _primary_sql(settings: Settings, sql: str) -> None:
    env = {**os.environ, "PGPASSWORD": stack.pg_password(settings)}
    done = subprocess.run([stack.pg_bin("psql"), "-h", "127.0.0.1", "-p", str(settings.stack_pg_port), "-U",
                           stack.DB_USER, "-d", stack.DB_NAME, "-qtAc", sql], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise stack.StackError(f"{sql}: {done.stderr}")


def replica_start(settings: Settings) -> str:
    """A hot standby of the stack's PostgreSQL on STACK_PG_PORT + 2, streaming from it through a
    replication slot (the primary keeps the WAL it has not received, up to 1 GB). Made anew by
    pg_basebackup at every start: a copy left stopped while the primary went on could not catch
    up. Returns its URL."""
    root = _root(settings)
    data = root / "replica"
    port = replica_port(settings)
    if stack.port_open(port):
        return replica_url(settings)
    user = stack._run_as()
    if data.exists():
        shutil.rmtree(data)
    _primary_sql(settings, "ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'")
    _primary_sql(settings, "SELECT pg_reload_conf()")
    _primary_sql(settings, DROP_SLOT)
    env = {**os.environ, "PGPASSWORD": stack.pg_password(settings)}
    # -R: standby.signal and primary_conninfo (with the slot), so it starts as a replica.
    made = subprocess.run([stack.pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p",
                           str(settings.stack_pg_port), "-U", stack.DB_USER, "-D", str(data), "-R",
                           "-X", "stream", "-c", "fast", "-C", "-S", SLOT],
                          user=user, env=env, capture_output=True, text=True, cwd="/", check=False)
    if made.returncode:
        raise stack.StackError(f"pg_basebackup failed: {made.stderr}")
    stack._pg_run([stack.pg_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l",
                   str(root / "replica.log"), "-o", f"-p {port}"], user)
    stack._wait_port(port, "the replica")
    return replica_url(settings)


def replica_stop(settings: Settings) -> None:
    """Stop the replica and drop its slot (so the primary keeps no WAL for it)."""
    link = settings.data_dir / "pg"
    data = link.resolve() / "replica" if link.exists() else None
    if data is None or not (data / "postmaster.pid").exists():
        return
    stack._pg_run([stack.pg_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)], stack._run_as(),
                  check=False)
    if stack.port_open(settings.stack_pg_port):
        _primary_sql(settings, DROP_SLOT)


def down(settings: Settings) -> None:
    """Stop PgBouncer, the replica and the Redis cluster where they run (make stop); their files
    stay with the stack's."""
    pooler_stop(settings)
    replica_stop(settings)
    redis_cluster_stop(settings)


def _kill(pidfile: Path, port: int) -> None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + 10
    while stack.port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- Redis Cluster -----------------------------------------------------------------------------

CLUSTER_MASTERS = 3


def redis_cluster_ports(settings: Settings) -> list[int]:
    return [settings.stack_redis_port + 1 + i for i in range(CLUSTER_MASTERS)]


def redis_cluster_url(settings: Settings) -> str:
    """A URL of one node (the client finds the others); the cluster shares the stack's password."""
    return stack.redis_url_at(settings, redis_cluster_ports(settings)[0])


def redis_cluster_start(settings: Settings) -> str:
    """Three Redis masters in cluster mode on STACK_REDIS_PORT + 1..3 (no replicas, a pure cache
    like the single node: no snapshots), the 16,384 slots split between them; returns a node's URL
    (REDIS_CLUSTER=true with it). Nodes keep their cluster identity in nodes.conf: a node restarted
    by redis_cluster_node_start rejoins with its slots and no data."""
    if not (settings.data_dir / "redis" / "password").exists():
        stack.redis_start(settings)  # creates the stack's Redis password, shared by the cluster
    ports = redis_cluster_ports(settings)
    for port in ports:
        redis_cluster_node_start(settings, port)
    import redis as sync_redis

    password = (settings.data_dir / "redis" / "password").read_text().strip()
    nodes = [sync_redis.Redis(port=p, password=password) for p in ports]
    try:
        def ok(node: sync_redis.Redis) -> bool:
            return bool(node.cluster("INFO").get("cluster_state") == "ok")

        if ok(nodes[0]):
            return redis_cluster_url(settings)
        share = 16384 // len(ports)
        for i, node in enumerate(nodes):
            last = 16383 if i == len(nodes) - 1 else (i + 1) * share - 1
            try:
                node.cluster("ADDSLOTS", *range(i * share, last + 1))
            except sync_redis.ResponseError as exc:  # slots already assigned by an earlier start
                if "busy" not in str(exc).lower():
                    raise
        for node in nodes[1:]:
            node.cluster("MEET", "127.0.0.1", ports[0])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(ok(n) for n in nodes):
                return redis_cluster_url(settings)
            time.sleep(0.1)
        raise stack.StackError("the Redis cluster did not reach cluster_state:ok within 30 s")
    finally:
        for node in nodes:
            node.close()


def redis_cluster_node_start(settings: Settings, port: int) -> None:
    directory = settings.data_dir / "redis" / f"cluster-{port}"
    if stack.port_open(port):
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = (settings.data_dir / "redis" / "password").read_text().strip()
    stack._write_private(directory / "redis.conf",
        f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\nmasterauth {password}\n"
        f"cluster-enabled yes\ncluster-config-file {directory}/nodes.conf\ncluster-node-timeout 2000\n"
        f"daemonize yes\npidfile {directory}/redis.pid\nlogfile {directory}/redis.log\n"
        f"dir {directory}\nsave \"\"\nappendonly no\n"
        f"maxmemory {settings.stack_redis_maxmemory}\nmaxmemory-policy allkeys-lru\n")
    subprocess.run([stack.redis_bin(), str(directory / "redis.conf")], check=True, capture_output=True)
    stack._wait_port(port, "a Redis cluster node")


def redis_cluster_node_pid(settings: Settings, port: int) -> int | None:
    try:
        return int((settings.data_dir / "redis" / f"cluster-{port}" / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def redis_cluster_stop(settings: Settings) -> None:
    for port in redis_cluster_ports(settings):
        _kill(settings.data_dir / "redis" / f"cluster-{port}" / "redis.pid", port)
