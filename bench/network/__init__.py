"""A network between the tiers: the bench stack's PostgreSQL and Redis moved onto a test host of
their own (a network namespace on a bridge, linked to the machine by veth; ops/hosts.py), reached
through a delaying relay on that host (relay.c: this kernel has no netem qdisc), so that every
round trip from the service to either costs the round-trip time set.

    with db_host(settings, rtt_ms=0.25) as far:
        far.database_url, far.redis_url   # as the service on the machine reaches them
        far.relay_cpu_s()                 # the relay's own CPU time so far

The relay runs on the load generator's CPU, off the server's: its CPU is measured and reported
beside each figure, not subtracted. On exit the servers go back to the machine's loopback and the
namespace is removed (and any an earlier run left, on entry).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from bench.native import compiled
from ops import postgres, redis_server
from ops.hosts import Hosts, via
from ops.system import StackError, run_checked, server_user
from service.settings import Settings

RELAY = Path(__file__).with_name("relay.c")
TAG = "n"  # the hosts' tag (ops/hosts.py): its own /24, apart from the chaos runs'
HOST = "db"


@dataclass
class FarTier:
    database_url: str
    redis_url: str
    relay: subprocess.Popen[str]
    rtt_ms: float

    def relay_cpu_s(self) -> float:
        times = psutil.Process(self.relay.pid).cpu_times()
        return float(times.user + times.system)


def start_relay(hosts: Hosts, address: str, one_way_us: int, ports: list[int], cpu: str | None) -> subprocess.Popen[str]:
    pairs = [f"{address}:{port}=127.0.0.1:{port}" for port in ports]
    argv = hosts.command(HOST, [str(compiled(RELAY)), str(one_way_us), *pairs])
    relay = subprocess.Popen((["taskset", "-c", cpu] if cpu else []) + argv, stdout=subprocess.PIPE, text=True)
    assert relay.stdout is not None
    if relay.stdout.readline().strip() != "ready":
        relay.kill()
        raise StackError("the delaying relay did not start")
    return relay


def move_in(hosts: Hosts, settings: Settings) -> None:
    """PostgreSQL and Redis, stopped on the machine, started again on the host (its own loopback)."""
    postgres.stop(settings)
    redis_server.stop(settings)
    data = (settings.data_dir / "pg").resolve() / "data"
    user = server_user()
    pg_ctl = [postgres.binary("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data), "-l",
              str(data.parent / "postgres.log"), "-o", f"-p {settings.stack_pg_port}"]
    run_checked(hosts.command(HOST, ["runuser", "-u", user, "--", *pg_ctl] if user else pg_ctl), None)
    conf = settings.data_dir / "redis" / "redis.conf"
    subprocess.run(hosts.command(HOST, [redis_server.binary(), str(conf)]), check=True, capture_output=True)


def move_out(settings: Settings) -> None:
    """Back on the machine: stopped wherever they run (by pid), started as the stack starts them."""
    postgres.stop(settings)
    redis_server.stop(settings)
    postgres.start(settings)
    redis_server.start(settings)


def answering(redis_url: str, seconds: float = 15.0) -> None:
    """Wait until Redis answers through the relay (it daemonizes before it listens)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=1)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise StackError("Redis on the test host did not answer through the relay") from None
                time.sleep(0.1)
    finally:
        client.close()


@contextmanager
def db_host(settings: Settings, rtt_ms: float, relay_cpu: str | None = None) -> Iterator[FarTier]:
    """The stack's servers on a host of their own, `rtt_ms` away (half each way, in the relay)."""
    if not Hosts.available():
        raise StackError("a network between the tiers needs root, iproute2 and iptables")
    database_url, redis_url = settings.db.database_url, settings.cache.redis_url
    ports = [settings.stack_pg_port, settings.stack_redis_port]
    with Hosts(TAG) as hosts:
        address = hosts.add(HOST)
        try:
            move_in(hosts, settings)
            relay = start_relay(hosts, address, round(rtt_ms * 500), ports, relay_cpu)
            try:
                far = FarTier(via(database_url, address, ports[0]), via(redis_url, address, ports[1]), relay, rtt_ms)
                answering(far.redis_url)
                yield far
            finally:
                relay.terminate()
                relay.wait(5)
        finally:
            move_out(settings)
