"""The partition tier of make chaos (`python -m bench.chaos --tier partition`): two instances of the
service (one worker each), each on a test host of its own (ops/hosts.py), behind HAProxy on the
machine, reaching the stack's PostgreSQL, its streaming replica (searches) and Redis through
forwarders on the bridge. Each fault cuts or shapes one link while everything else still talks:

  redis-cut       instance 1 cut from Redis, both ways
  redis-cut-out   only instance 1's packets to Redis dropped (Redis's to it still arrive)
  redis-cut-in    only Redis's packets to instance 1 dropped (its commands still run there)
  pg-cut          instance 1 cut from PostgreSQL (it answers 503 for what needs it)
  lb-cut          HAProxy cut from instance 1 (requests in flight there get no answer)
  redis-slow      instance 1's link to Redis slow and lossy: 50 ms each way, 5% of chunks lost
                  once (a retransmission later, the bytes behind held), by its forwarder
  pg-slow         the same on instance 1's link to PostgreSQL: 20 ms each way, 2% lost
  replica-cut     the replica's streaming connection to the primary cut both ways: it falls
                  behind every post (what it has not replayed is read from the primary, by LSN)
  redis-cut-long  as redis-cut, three times as long

Every 503 must come from instance 1 while its own link to PostgreSQL is cut (pg-cut); the other
instance, still reaching it, answers every request.

Run twice: with the database notices on (judged), and with DATABASE_NOTICES=false, whose stale
reads are what the notices prevent (that run must catch some, or the experiment proves nothing).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from bench.chaos.faults import Faults, schedule
from bench.chaos.load import Load, Phase, Read, Write
from bench.chaos.verdicts import phase_of, report
from ops import replica, stack
from ops.balancer import Balancer
from ops.hosts import Hosts, via
from service.settings import Settings
from tests.proxy import Proxy, Shape

PARTITION_FAULTS = ["redis-cut", "redis-cut-out", "redis-cut-in", "pg-cut", "lb-cut", "redis-slow", "pg-slow",
                    "replica-cut", "redis-cut-long"]
SLOW = {"redis-slow": Shape(delay=0.05, loss=0.05), "pg-slow": Shape(delay=0.02, loss=0.02)}
CACHE_BACK_S = 2.0  # from healing a cut from Redis to instance 1 answering from its cache again


@dataclasses.dataclass
class Partitioned:
    hosts: Hosts
    redis: Proxy
    database: Proxy
    standby: Proxy
    balancer: Balancer

    @property
    def first_workers(self) -> set[str]:
        """Instance 1's worker processes, as X-Request-ID names them (pid in hex)."""
        main = psutil.Process(self.balancer.instances[0].pid)
        return {f"{p.pid:x}" for p in main.children(recursive=True)}


@contextmanager
def partitioned(settings: Settings, env: dict[str, str]) -> Iterator[Partitioned]:
    """The two instances on their hosts, behind HAProxy on settings' PORT, searching a streaming
    replica of their own; all removed after."""
    resolved = stack.resolve(settings)
    with Hosts("c") as hosts:
        standby_url = replica.start(settings)
        forwarders = [Proxy(port, host=hosts.gateway) for port in
                      (settings.stack_redis_port, settings.stack_pg_port, replica.port(settings))]
        redis, database, standby = forwarders
        seen = resolved.replaced(database_url=via(resolved.db.database_url, hosts.gateway, database.port),
                                   redis_url=via(resolved.cache.redis_url, hosts.gateway, redis.port),
                                   replica_database_url=via(standby_url, hosts.gateway, standby.port))
        balancer = Balancer(seen, [settings.port + 101, settings.port + 102], env=env, hosts=hosts)
        try:
            balancer.start()
            yield Partitioned(hosts, redis, database, standby, balancer)
        finally:
            balancer.stop()
            for forwarder in forwarders:
                forwarder.close()
            replica.stop(settings)


class PartitionFaults(Faults):
    """Link cuts around instance 1 ("i1"), each held for the fault period (the long one thrice)."""

    def __init__(self, settings: Settings, net: Partitioned, fault: float) -> None:
        # Not Faults.__init__: there is no single service process or Redis proxy to hold here.
        self.settings, self.net, self.fault = settings, net, fault
        self.replica_behind: int | None = None  # WAL bytes not replayed when the replica-cut healed

    async def _cut(self, peer_port: int, direction: str = "both", served: bool = False,
                   seconds: float | None = None) -> None:
        hosts = self.net.hosts
        hosts.cut("i1", hosts.gateway, peer_port, direction, served)
        try:
            await asyncio.sleep(seconds or self.fault)
        finally:
            hosts.heal()

    async def redis_cut(self) -> None:
        await self._cut(self.net.redis.port)

    async def redis_cut_out(self) -> None:
        await self._cut(self.net.redis.port, "out")

    async def redis_cut_in(self) -> None:
        await self._cut(self.net.redis.port, "in")

    async def redis_cut_long(self) -> None:
        await self._cut(self.net.redis.port, seconds=3 * self.fault)

    async def pg_cut(self) -> None:
        await self._cut(self.net.database.port)

    async def lb_cut(self) -> None:
        await self._cut(self.net.balancer.ports[0], served=True)

    async def _shape(self, forwarder: Proxy, shape: Shape) -> None:
        forwarder.shapes[self.net.hosts.addresses["i1"]] = shape
        try:
            await asyncio.sleep(self.fault)
        finally:
            forwarder.shapes.clear()

    async def redis_slow(self) -> None:
        await self._shape(self.net.redis, SLOW["redis-slow"])

    async def pg_slow(self) -> None:
        await self._shape(self.net.database, SLOW["pg-slow"])

    async def replica_cut(self) -> None:
        with replica.cut_off(self.settings):
            await asyncio.sleep(self.fault)
            behind = await asyncio.to_thread(replica.behind, self.settings)
        self.replica_behind = behind


def foreign_503s(phases: list[Phase], spans: list[Write | Read], first: set[str]) -> list[str]:
    """503s not answered by instance 1 (a worker of instance 2, or one with no X-Request-ID, as
    HAProxy's own), by phase: no fault here takes PostgreSQL from instance 2, so none is expected."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for x in spans:
        if x.status == "503" and x.worker not in first:
            counts[phases[phase_of(phases, x.start)].name][x.worker or "no X-Request-ID"] += 1
    return [f"{name}: {sum(by.values())} answers 503 not from instance 1 (the only one cut from anything): "
            + ", ".join(f"{n} from {who}" for who, n in by.most_common()) for name, by in counts.items()]


def cache_back(rows: list[dict[str, Any]], phases: list[Any], reads: list[Read], first: set[str]) -> list[str]:
    """Per cut from Redis: seconds from healing to instance 1's first read answered from its cache
    (HIT or MISS) that began after it, into the phase's row; a target missed, as a problem."""
    out = []
    for row, phase in zip(rows, phases, strict=True):
        if not phase.name.startswith("redis-cut") or not phase.healed:
            continue
        back = [r.end - phase.healed for r in reads if r.worker in first and r.start >= phase.healed
                and r.cache in ("HIT", "MISS") and r.start < (phase.end or float("inf"))]
        row["cache_back_s"] = round(min(back), 2) if back else None
        if not back or min(back) > CACHE_BACK_S:
            out.append(f"{phase.name}: instance 1 answered from its cache again "
                       f"{row['cache_back_s']} s after healing (at most {CACHE_BACK_S:g})")
    return out


def experiment(settings: Settings, net: Partitioned, args: Any, run_id: str) -> dict[str, Any]:
    """The load through HAProxy under the cuts, then the state after healing, judged (as the other
    tiers' experiment), with instance 1's return to its cache after each cut from Redis."""
    load, phases = Load(net.balancer.url, run_id), list[Phase]()
    first = net.first_workers

    faults = PartitionFaults(settings, net, args.fault)

    async def run() -> None:
        await asyncio.gather(schedule(faults, args.faults, args.steady, phases, load),
                             load.run())

    asyncio.run(run())
    time.sleep(1.0)  # the last in-flight cache repairs
    final = asyncio.run(load.final_state(stack.urls(settings)[0]))
    result = report(phases, load.writes, load.reads, load.tags, final)
    result["problems"] += cache_back(result["phases"], phases, load.reads, first)
    result["problems"] += foreign_503s(phases, [*load.writes, *load.reads], first)
    for row in result["phases"]:
        if row["phase"] == "replica-cut":  # a replica that kept up would prove nothing
            row["replica_behind_bytes"] = faults.replica_behind
            if not faults.replica_behind:
                result["problems"].append("replica-cut: the replica was not behind the primary at the heal")
    return result
