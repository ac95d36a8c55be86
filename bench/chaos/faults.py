"""The chaos run's faults, injected one after another with steady periods between."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

from bench.chaos.load import Load, Phase
from bench.harness import children_connected_to
from ops import postgres, redis_server, replica
from ops.process import ServiceProcess
from ops.system import StackError
from service.settings import Settings
from tests.proxy import Proxy

FAULTS = ["redis-kill", "redis-freeze", "redis-cut", "pg-kill", "worker-kill", "sigterm"]
# Behind PgBouncer with a replica (--tier pooled): PostgreSQL crashing under the pooler, the
# replica crashing, and Redis, on the tier make cluster POOLER=1 REPLICA=1 runs.
POOLED_FAULTS = ["pg-kill", "replica-kill", "redis-kill"]
# Faults that cut the service's own connections: there a request may get no answer at all (a
# request HAProxy had sent to the instance it was then cut from included).
CUTS = {"worker-kill", "sigterm", "lb-cut"}
# Faults that take PostgreSQL away: a 503 is expected there, from the fault until shortly after.
DATABASE_DOWN = {"pg-kill", "pg-cut"}
# The longest a steady period is drawn out waiting for a phase's MIN_SUCCESSES.
STEADY_LIMIT_S = 30.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def signal_pid(pid: int | None, signum: signal.Signals) -> None:
    """Signal one process; a missing pid is an error here, never os.kill(0, ...) (our own group)."""
    if pid is None or pid <= 0:
        raise RuntimeError(f"no process to send {signum.name} to (its pid file is missing)")
    os.kill(pid, signum)


async def restart(start: Callable[[Settings], object], settings: Settings, tries: int = 20) -> None:
    """Start a killed server again, retrying while what it left behind (backends that have not
    yet noticed their postmaster's death, a replication slot still held) is going away."""
    for attempt in range(tries):
        try:
            await asyncio.to_thread(start, settings)
            return
        except StackError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.5)


class Faults:
    def __init__(self, settings: Settings, service: ServiceProcess, proxy: Proxy, fault: float) -> None:
        self.settings = settings
        self.service = service
        self.proxy = proxy
        self.fault = fault

    async def inject(self, name: str) -> None:
        """One fault, held for the fault period, then healed."""
        await getattr(self, name.replace("-", "_"))()

    async def redis_kill(self) -> None:
        signal_pid(redis_server.pid(self.settings), signal.SIGKILL)
        await asyncio.sleep(self.fault)
        await asyncio.to_thread(redis_server.start, self.settings)

    async def redis_freeze(self) -> None:
        pid = redis_server.pid(self.settings)
        signal_pid(pid, signal.SIGSTOP)
        await asyncio.sleep(self.fault)
        signal_pid(pid, signal.SIGCONT)

    async def redis_cut(self) -> None:
        self.proxy.blackhole = True
        await asyncio.sleep(self.fault)
        self.proxy.blackhole = False

    async def pg_kill(self) -> None:
        signal_pid(postgres.pid(self.settings), signal.SIGKILL)
        await asyncio.sleep(self.fault)
        await restart(postgres.start, self.settings)  # once the old backends have noticed and exited

    async def replica_kill(self) -> None:
        signal_pid(replica.pid(self.settings), signal.SIGKILL)
        await asyncio.sleep(self.fault)
        await restart(replica.start, self.settings)  # made anew from the primary

    async def worker_kill(self) -> None:
        signal_pid(min(children_connected_to(self.service.pid, self.settings.stack_pg_port)), signal.SIGKILL)
        await asyncio.sleep(self.fault)

    async def sigterm(self) -> None:
        await asyncio.to_thread(self.service.stop)
        await asyncio.to_thread(self.service.start, append_log=True)


async def steady_load(seconds: float, phase: Phase, load: Load, limit: float = STEADY_LIMIT_S) -> None:
    """Steady load for at least `seconds`, and on until the phase has MIN_SUCCESSES acknowledged
    writes and successful reads (a slow machine serves fewer in the same time, and a phase judged
    on a handful proves nothing), for at most `limit` more: past it the verdict names the phase."""
    await asyncio.sleep(seconds)
    deadline = time.monotonic() + limit
    while not load.enough_since(phase.start) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def schedule(faults: Faults, names: list[str], steady: float, phases: list[Phase], load: Load) -> None:
    """Steady load, then each fault and steady load again; phases records when each happened. The
    first steady period begins once the load does (`loading`: its users registered and logged in,
    which takes 16 password hashes, seconds on a slow machine)."""
    await load.loading.wait()
    phases.append(Phase("steady", time.monotonic()))
    await steady_load(steady, phases[-1], load)
    for name in names:
        phase = Phase(name, time.monotonic())
        phases[-1].end = phase.start
        phases.append(phase)
        log(f"fault: {name}")
        await faults.inject(name)
        phase.healed = time.monotonic()
        await steady_load(steady, phase, load)
    phases[-1].end = time.monotonic()
    load.stop.set()
