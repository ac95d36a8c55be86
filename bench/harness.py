"""Building blocks of the HTTP load runs: the bench stack, a pinned server, wrk, CPU use."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import psutil

from ops import pgbouncer, postgres, redis_server, stack
from ops.balancer import Balancer, instance_ports
from ops.process import SERVICE_RUN, ServiceError, ServiceProcess
from ops.system import ensure_tool
from service.db.migrate import migrate
from service.settings import ROOT, Settings

if TYPE_CHECKING:
    from bench.seed import SeedSpec

WRK_DIR = ROOT / "bench" / "wrk"
BENCH_ENV = {
    "ENV": "development",
    **stack.named_env("bench"),
    "DATABASE_URL": "",
    "REDIS_URL": "",
    "HOST": "127.0.0.1",
    "PORT": "2090",
    "ACCESS_LOG": "false",
    "WORKERS": "1",  # each run sets its own count; one unless it does
    # Several servers run side by side over one PostgreSQL (max_connections 100, 3 reserved): ours
    # and five peers, each pool at most 14 (the peers read the same setting), 84 in all, and a
    # pool keeps what it opened while its server waits its turn. One process on one core has
    # far fewer statements in flight: 20 against 80 measured miss 0.95, post 1.00, deep_offset
    # 1.08 side by side (within the noise).
    "DB_POOL_MAX": "14",
}
HOT_TAG = "topic1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bench_settings() -> Settings:
    return Settings.from_env(BENCH_ENV)


SEED_LIMIT_S = 600.0  # the bench seed takes seconds (200k tweets), make bench-scale's minutes


def prepare_stack(spec: SeedSpec | None = None) -> str:
    """Start the bench stack, migrate, seed once (deterministic; BENCH_SPEC unless another spec is
    given, as by make bench-scale) as a data-only load (bench/seed.py data_only), undo earlier
    bench posts. A seed over SEED_LIMIT_S is an error that says so."""
    from bench.seed import BENCH_SPEC, data_only, reset, seed

    settings = bench_settings()
    stack.up(settings)
    dsn = stack.urls(settings)[0]
    asyncio.run(migrate(dsn))
    try:
        if asyncio.run(asyncio.wait_for(seed(data_only(dsn), spec or BENCH_SPEC, replace=True), SEED_LIMIT_S)):
            log("seeded the bench database")
    except TimeoutError:
        raise RuntimeError(f"seeding the bench database did not finish within {SEED_LIMIT_S:g} s") from None
    asyncio.run(reset(data_only(dsn)))
    flush_cache()
    return dsn


def start_stack() -> str:
    """The bench stack started (its servers, the Redis password made on a first start), nothing
    loaded: for what brings databases of its own (make bench-check). Its PostgreSQL URL."""
    settings = bench_settings()
    stack.up(settings)
    return stack.urls(settings)[0]


def flush_cache(redis_url: str = "") -> None:
    """The bench stack's Redis emptied (or the one at redis_url: the stack moved elsewhere)."""
    import redis

    client = redis.Redis.from_url(redis_url or stack.urls(bench_settings())[1])
    client.flushdb()
    client.close()


def own_keys(env: dict[str, str], index: int) -> dict[str, str]:
    """env for member `index` of a side-by-side group, with Redis keys and channels of its own
    (CACHE_PREFIX): its posts' invalidations and the feeds' acknowledgements stay among its own
    workers. On one prefix, every post of a stack on this service's code waited for the feeds of
    the other stacks' idle servers to answer, on the same CPU (a node peer's did not)."""
    return {**env, "CACHE_PREFIX": f"{bench_settings().cache.cache_prefix}{index}"} if index else env


def cpus() -> tuple[str, str | None]:
    """(server CPUs, load generator CPU): separate when there are 2+ CPUs."""
    n = len(os.sched_getaffinity(0))
    if n >= 2:
        return "0", "1"
    return "0", None


@dataclass
class Server:
    """The service (or a peer's command) on the bench stack, pinned to cpus (ops.process)."""

    env: dict[str, str]
    cpus: str | None = "0"
    command: list[str] = field(default_factory=lambda: list(SERVICE_RUN))
    cwd: Path = ROOT  # the source tree the server runs from (a baseline commit's, for bench.check)
    _process: ServiceProcess | None = None

    @property
    def port(self) -> int:
        return int(self.env.get("PORT", BENCH_ENV["PORT"]))

    @property
    def log_path(self) -> Path:
        return Path(BENCH_ENV["DATA_DIR"]) / "logs" / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_urls(self) -> list[str]:
        return [self.url]

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._process.proc if self._process is not None else None

    def start(self) -> Server:
        self._process = ServiceProcess({**BENCH_ENV, **self.env, "PORT": str(self.port)}, self.log_path,
                                       cwd=self.cwd, cpus=self.cpus, command=self.command)
        try:
            self._process.start()
        except ServiceError as exc:
            raise RuntimeError(str(exc)) from None
        time.sleep(0.5)  # let every worker finish starting
        return self

    def processes(self) -> list[psutil.Process]:
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(timeout=15)
            self._process = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class BalancerServer:
    """N single-process instances of the service behind HAProxy on the bench stack
    (ops/balancer.py), used like Server; HAProxy's CPU counts as the server's."""

    instances: int
    env: dict[str, str]
    _balancer: Balancer | None = None

    @property
    def port(self) -> int:
        return int(BENCH_ENV["PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_urls(self) -> list[str]:
        """Each instance's own URL: through HAProxy a scrape would reach one of them."""
        assert self._balancer is not None
        return [p.url for p in self._balancer.instances]

    def start(self) -> BalancerServer:
        settings = stack.resolve(bench_settings())
        own = {k: v for k, v in BENCH_ENV.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
        self._balancer = Balancer(settings, instance_ports(settings, self.instances), env={**own, **self.env})
        self._balancer.start()
        time.sleep(0.5)
        return self

    def processes(self) -> list[psutil.Process]:
        assert self._balancer is not None
        procs = []
        for instance in self._balancer.instances:
            root = psutil.Process(instance.pid)
            procs += [root, *root.children(recursive=True)]
        assert self._balancer.haproxy_pid is not None
        return [*procs, psutil.Process(self._balancer.haproxy_pid)]

    def stop(self) -> None:
        if self._balancer is not None:
            self._balancer.stop()
            self._balancer = None

    def __enter__(self) -> BalancerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def children_connected_to(pid: int, port: int) -> set[int]:
    """Processes under pid holding a TCP connection to port: the server workers, told from
    Sanic's helper processes by their pools (PostgreSQL) or invalidation feeds (Redis)."""
    pids = set()
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if any(c.raddr and c.raddr.port == port for c in child.net_connections("tcp")):
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def stack_processes(which: str) -> list[psutil.Process]:
    """The bench stack's PostgreSQL (the postmaster and its backends), Redis or PgBouncer processes."""
    settings = bench_settings()
    pid = {"postgres": postgres.pid, "redis": redis_server.pid, "pgbouncer": pgbouncer.pid}[which](settings)
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_by_pid(procs: list[psutil.Process], part: str = "") -> dict[int, float]:
    """Each process's CPU seconds so far (user + system, or the one part named: "user" or
    "system"); processes already gone left out."""
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = getattr(t, part) if part else t.user + t.system
        except psutil.Error:
            pass
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds a changing set of processes used between two readings: each process still there
    counts its growth, one started since all of its time; one gone since is left out (its last
    moments are lost, rather than its whole past subtracted: a PostgreSQL backend closing during a
    run once made a path's PostgreSQL µs negative)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def token(url: str, user: str = "bench_1") -> str:
    r = httpx.post(f"{url}/api/v1/login", json={"username": user, "password": "bench-password"}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def signed_token(user: str = "bench_1") -> str:
    """A token signed with the bench stack's secret, for servers without a login route."""
    import asyncpg

    from service.security.tokens import Tokens

    settings = bench_settings().with_secret()

    async def user_id() -> int:
        conn = await asyncpg.connect(stack.urls(settings)[0])
        try:
            return int(await conn.fetchval("SELECT id FROM users WHERE username = $1", user))
        finally:
            await conn.close()

    return Tokens(settings.token_secret, 3600, 0).issue(asyncio.run(user_id()), user)


def ensure_wrk() -> str:
    return ensure_tool("wrk", "wrk")


SCRIPTS = {
    "floor": ("get.lua", {"PATHS": "/ping"}),
    "hit": ("get.lua", {"PATHS": f"/api/v1/search-tweets?tag={HOT_TAG}&page=1&page_size=10"}),
    # The hot tag's first page on a server with CACHE_ENABLED=false: PostgreSQL alone.
    "bypass": ("get.lua", {"PATHS": f"/api/v1/search-tweets?tag={HOT_TAG}&page=1&page_size=10"}),
    # Beyond the cached window, a different page each time: PostgreSQL answers (deep.lua; bench.load
    # sets BEFORE for keyset pages).
    "deep_offset": ("deep.lua", {"MODE": "offset", "TAG": HOT_TAG}),
    "deep_keyset": ("deep.lua", {"MODE": "keyset", "TAG": HOT_TAG}),
    # A different cold tag on every request (a real cache miss; cold.lua's START and COUNT).
    "cold": ("cold.lua", {}),
    "post": ("post.lua", {}),
    "login": ("login.lua", {"USERS": "1000"}),
}


class Loaded(Protocol):
    """What wrk loads: a URL, and the processes whose CPU counts as the server's."""

    @property
    def url(self) -> str: ...

    def processes(self) -> list[psutil.Process]: ...


def wrk(server: Loaded, endpoint: str, seconds: float, bearer: str, load_cpu: str | None,
        connections: int = 64, script_env: dict[str, str] | None = None) -> dict[str, Any]:
    script, extra = SCRIPTS[endpoint]
    env = {**os.environ, "WRK_DIR": str(WRK_DIR), "TOKEN": bearer, **extra, **(script_env or {})}
    cmd = (["taskset", "-c", load_cpu] if load_cpu else []) + [
        ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
        "-s", str(WRK_DIR / script), server.url]
    procs, pg, rd, pb = (server.processes(), stack_processes("postgres"), stack_processes("redis"),
                         stack_processes("pgbouncer"))
    cpu_before, pg_before, rd_before, pb_before = (cpu_by_pid(p) for p in (procs, pg, rd, pb))
    user_before = cpu_by_pid(procs, "user")
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    cpu = cpu_used(cpu_before, cpu_by_pid(procs))
    user = cpu_used(user_before, cpu_by_pid(procs, "user"))
    pg_cpu = cpu_used(pg_before, cpu_by_pid(stack_processes("postgres")))
    rd_cpu = cpu_used(rd_before, cpu_by_pid(stack_processes("redis")))
    pb_cpu = cpu_used(pb_before, cpu_by_pid(pb))  # 0 where PgBouncer is not running
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    data: dict[str, Any] = json.loads(line[len("WRK_JSON "):])
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                   "timeouts"))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "requests": data["requests"], "errors": errors,
        "p50_ms": data["p50_us"] / 1000, "p90_ms": data["p90_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000, "p999_ms": data["p999_us"] / 1000,
        "server_cpu_pct": 100 * cpu / elapsed, "tool": "wrk", "connections": connections,
        # CPU time per request of each part, in microseconds: with two cores, 2 s / their sum
        # bounds the throughput whatever the code does.
        "cpu_us_per_request": {"server": 1e6 * cpu / max(1, data["requests"]),
                               "postgres": 1e6 * pg_cpu / max(1, data["requests"]),
                               "redis": 1e6 * rd_cpu / max(1, data["requests"]),
                               "pgbouncer": 1e6 * pb_cpu / max(1, data["requests"]),
                               # the server's split: its own code (user) and the kernel's work for it
                               "server_user": 1e6 * user / max(1, data["requests"]),
                               "server_system": 1e6 * (cpu - user) / max(1, data["requests"])},
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
