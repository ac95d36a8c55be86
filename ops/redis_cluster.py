"""A Redis Cluster of three masters on STACK_REDIS_PORT + 1..3, beside the embedded Redis and
sharing its password, for the tests, `make cluster REDIS_CLUSTER=1` and the benchmarks."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ops import redis_server
from ops.process import read_pid, terminate
from ops.system import StackError, port_open, wait_port, write_private
from service.settings import Settings

MASTERS = 3


BUS_OFFSET = 10000  # each node's cluster bus listens on its port + 10000 (Redis 6 cannot move it)


def ports(settings: Settings) -> list[int]:
    """The nodes' ports, from the stack's Redis port: lowered, 4000 at a time, until their bus
    ports lie below the machine's ephemeral range, where an outgoing connection of anything on the
    machine may hold one (the node then fails to start: "bind: Address already in use")."""
    base = settings.stack_redis_port + 1
    while base + MASTERS - 1 + BUS_OFFSET >= ephemeral_low() and base > 4000 + 1024:
        base -= 4000
    return [base + i for i in range(MASTERS)]


def ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def url(settings: Settings) -> str:
    """A URL of one node (the client finds the others); the cluster shares the stack's password."""
    return redis_server.url_at(settings, ports(settings)[0])


def start(settings: Settings) -> str:
    """Three Redis masters in cluster mode on STACK_REDIS_PORT + 1..3 (no replicas, a pure cache
    like the single node: no snapshots), the 16,384 slots split between them; returns a node's URL
    (REDIS_CLUSTER=true with it). Nodes keep their cluster identity in nodes.conf: a node restarted
    by node_start rejoins with its slots and no data."""
    if not redis_server.password_file(settings).exists():
        redis_server.start(settings)  # creates the stack's Redis password, shared by the cluster
    node_ports = ports(settings)
    for port in node_ports:
        node_start(settings, port)
    import redis as sync_redis

    password = redis_server.password_file(settings).read_text().strip()
    nodes = [sync_redis.Redis(port=p, password=password) for p in node_ports]
    try:
        def ok(node: sync_redis.Redis) -> bool:
            return bool(node.cluster("INFO").get("cluster_state") == "ok")

        if ok(nodes[0]):
            return url(settings)
        share = 16384 // len(node_ports)
        for i, node in enumerate(nodes):
            last = 16383 if i == len(nodes) - 1 else (i + 1) * share - 1
            try:
                node.cluster("ADDSLOTS", *range(i * share, last + 1))
            except sync_redis.ResponseError as exc:  # slots already assigned by an earlier start
                if "busy" not in str(exc).lower():
                    raise
        for node in nodes[1:]:
            node.cluster("MEET", "127.0.0.1", node_ports[0])
    finally:
        for node in nodes:
            node.close()
    wait_ok(settings)
    return url(settings)


def wait_ok(settings: Settings, seconds: float = 30) -> float:
    """Until every node reports cluster_state:ok (a restarted master rejoins after a while, and
    until then the cluster answers CLUSTERDOWN to keys); how long that took."""
    import redis as sync_redis

    password = redis_server.password_file(settings).read_text().strip()
    nodes = [sync_redis.Redis(port=p, password=password) for p in ports(settings)]
    started = time.monotonic()
    try:
        while time.monotonic() < started + seconds:
            try:
                if all(n.cluster("INFO").get("cluster_state") == "ok" for n in nodes):
                    return time.monotonic() - started
            except sync_redis.ConnectionError:  # a node still starting
                pass
            time.sleep(0.1)
        raise StackError(f"the Redis cluster did not reach cluster_state:ok within {seconds} s")
    finally:
        for node in nodes:
            node.close()


def node_start(settings: Settings, port: int) -> None:
    directory = settings.data_dir / "redis" / f"cluster-{port}"
    if port_open(port):
        return
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = redis_server.password_file(settings).read_text().strip()
    write_private(directory / "redis.conf",
        f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\nmasterauth {password}\n"
        f"cluster-enabled yes\ncluster-config-file {directory}/nodes.conf\ncluster-node-timeout 2000\n"
        f"daemonize yes\npidfile {directory}/redis.pid\nlogfile {directory}/redis.log\n"
        f"dir {directory}\nsave \"\"\nappendonly no\n"
        f"maxmemory {settings.stack_redis_maxmemory}\nmaxmemory-policy allkeys-lru\n")
    subprocess.run([redis_server.binary(), str(directory / "redis.conf")], check=True, capture_output=True)
    wait_port(port, "a Redis cluster node")


def node_pid(settings: Settings, port: int) -> int | None:
    return read_pid(settings.data_dir / "redis" / f"cluster-{port}" / "redis.pid")


def stop(settings: Settings) -> None:
    for port in ports(settings):
        terminate(node_pid(settings, port), grace=10)
