"""A hot standby of the embedded PostgreSQL on STACK_PG_PORT + 2, made by pg_basebackup and
streaming from it through a replication slot, for the tests, `make cluster REPLICA=1` and the
benchmarks. Its data lives beside the cluster's (DATA_DIR/pg/replica)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from ops import postgres
from ops.process import read_pid
from ops.system import StackError, ensure_tool, port_open, run_checked, server_user, wait_port
from service.settings import Settings

SLOT = "simple_twitter_replica"
DROP_SLOT = ("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
             "WHERE slot_name = 'simple_twitter_replica'")  # SLOT


def port(settings: Settings) -> int:
    return settings.stack_pg_port + 2


def url(settings: Settings) -> str:
    return postgres.url_at(settings, port(settings))


def start(settings: Settings) -> str:
    """The standby (the primary keeps the WAL it has not received, up to 1 GB). Made anew at every
    start: a copy left stopped while the primary went on could not catch up. Returns its URL."""
    root = postgres.data_root(settings)
    data = root / "replica"
    if port_open(port(settings)):
        return url(settings)
    user = server_user()
    if data.exists():
        shutil.rmtree(data)
    postgres.psql(settings, "ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'")
    postgres.psql(settings, "SELECT pg_reload_conf()")
    postgres.psql(settings, DROP_SLOT)
    env = {**os.environ, "PGPASSWORD": postgres.password(settings)}
    # -R: standby.signal and primary_conninfo (with the slot), so it starts as a replica.
    made = subprocess.run([postgres.binary("pg_basebackup"), "-h", "127.0.0.1", "-p",
                           str(settings.stack_pg_port), "-U", postgres.DB_USER, "-D", str(data), "-R",
                           "-X", "stream", "-c", "fast", "-C", "-S", SLOT],
                          user=user, env=env, capture_output=True, text=True, cwd="/", check=False)
    if made.returncode:
        raise StackError(f"pg_basebackup failed: {made.stderr}")
    run_checked([postgres.binary("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l",
                 str(root / "replica.log"), "-o", f"-p {port(settings)}"], user)
    wait_port(port(settings), "the replica")
    return url(settings)


def pid(settings: Settings) -> int | None:
    """The replica's postmaster's process id, or None when it has none."""
    link = settings.data_dir / "pg"
    return read_pid(link.resolve() / "replica" / "postmaster.pid") if link.exists() else None


def stop(settings: Settings) -> None:
    """Stop the replica and drop its slot (so the primary keeps no WAL for it)."""
    link = settings.data_dir / "pg"
    data = link.resolve() / "replica" if link.exists() else None
    if data is None or not (data / "postmaster.pid").exists():
        return
    run_checked([postgres.binary("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)], server_user(),
                check=False)
    if port_open(settings.stack_pg_port):
        postgres.psql(settings, DROP_SLOT)


def behind(settings: Settings) -> int:
    """WAL bytes the primary has written that the replica has not reported replayed (0: none, or
    no replica streaming)."""
    lag = postgres.psql(settings, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                                  "FROM pg_stat_replication LIMIT 1")
    return int(lag) if lag else 0


@contextmanager
def cut_off(settings: Settings) -> Iterator[None]:
    """The replica's streaming connection to the primary cut both ways while inside (as a
    partition would: packets dropped, the connection left open and quiet, so the replica falls
    behind): iptables on the machine's loopback, on the port pg_stat_replication names. Needs root."""
    port = postgres.psql(settings, "SELECT client_port FROM pg_stat_replication LIMIT 1")
    if not port:
        raise StackError("no replica is streaming from the primary")
    pg = str(settings.stack_pg_port)
    rules = [["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", pg, "--dport", port, "-j", "DROP"],
             ["OUTPUT", "-o", "lo", "-p", "tcp", "--sport", port, "--dport", pg, "-j", "DROP"]]
    iptables = ensure_tool("iptables", "iptables")
    for rule in rules:
        subprocess.run([iptables, "-I", *rule], check=True, capture_output=True)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run([iptables, "-D", *rule], check=False, capture_output=True)
