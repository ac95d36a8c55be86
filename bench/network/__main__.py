"""make bench-network RTT=0.25ms: every path on ours and every peer with PostgreSQL and Redis on a
test host of their own, RTT away (bench/network/__init__.py): each stack's maximum (wrk) and its
capacity at the SLO (open loop, bench/curves.py), and the tunings that matter on a network
switched off in turn. Results for each RTT are kept in bench/results/network.json (a later run at
another RTT is added beside them); --publish writes RESULTS.md's section.

    python -m bench.network --rtt-ms 0.25[,1] [--quick] [--stacks ours,...] [--publish]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from typing import Any

import asyncpg
import redis

from bench import curves
from bench.facts import commit, facts
from bench.harness import (
    Server,
    bench_settings,
    cpus,
    log,
    prepare_stack,
    signed_token,
    token,
    write_json,
    wrk,
)
from bench.network import FarTier, db_host
from bench.paths import RESULTS
from bench.report.network import problems, publish
from ops import stack
from ops.hosts import Hosts
from ops.system import port_open

PATHS = ["hit", "miss", "bypass", "post"]
STORM = {"CACHE_TTL_SECONDS": "1", "CACHE_TTL_JITTER": "0", "LOCAL_CACHE_TTL": "0"}
# The tunings a network makes matter, each switched off on the paths where it acts (wrk maximum,
# beside ours with every tuning on at the same RTT).
ABLATIONS: dict[str, tuple[dict[str, str], list[str]]] = {
    "every tuning on": ({}, ["hit", "miss", "post"]),
    "pipelining off": ({"USE_PIPELINE": "false"}, ["miss", "post"]),
    "version read in its own round trip": ({"CACHE_READ_VERSION": "false"}, ["hit", "miss"]),
    "post cache updates one by one (not together)": ({"POST_UPDATES_TOGETHER": "false"}, ["post"]),
    "refill storm, single-flight on": (STORM, ["hit"]),
    "refill storm, single-flight off": ({**STORM, "USE_SINGLEFLIGHT": "false"}, ["hit"]),
}
OUT = RESULTS / "network.json"


def measured_rtt(far: FarTier, samples: int = 50) -> dict[str, float]:
    """The round trip as the service sees it: the median SELECT 1 and PING through the relay, ms."""
    async def database() -> float:
        conn = await asyncpg.connect(far.database_url)
        try:
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                await conn.fetchval("SELECT 1")
                times.append(time.perf_counter() - started)
            return statistics.median(times) * 1000
        finally:
            await conn.close()

    client = redis.Redis.from_url(far.redis_url)
    pings = []
    for _ in range(samples):
        started = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - started)
    client.close()
    return {"postgres_ms": asyncio.run(database()), "redis_ms": statistics.median(pings) * 1000}


def ablation(far: FarTier, plan: curves.Plan) -> dict[str, Any]:
    """Each row's wrk maximum on its paths, one server per row, at this RTT."""
    server_cpu, load_cpu = cpus()
    rows: dict[str, Any] = {}
    for label, (env, paths) in ABLATIONS.items():
        with Server({**env, **plan.env}, server_cpu) as server:
            bearer = token(server.url)
            rows[label] = {}
            for path in paths:
                if path == "miss":
                    curves.flush(plan)
                endpoint = curves.WRK_ENDPOINT[path]
                script_env = {"START": "0", "COUNT": "50000"} if endpoint == "cold" else None
                before = far.relay_cpu_s()
                r = wrk(server, endpoint, plan.seconds, bearer, load_cpu, script_env=script_env)
                r["relay_us_per_request"] = 1e6 * (far.relay_cpu_s() - before) / max(1, r["requests"])
                rows[label][path] = r
                log(f"  {label:<46} {path:<6} {r['rps']:>8,.0f} req/s")
    return rows


def at_rtt(rtt_ms: float, plan: curves.Plan) -> dict[str, Any]:
    settings = stack.resolve(bench_settings())
    _, load_cpu = cpus()
    with db_host(settings, rtt_ms, relay_cpu=load_cpu) as far:
        plan.env = {"DATABASE_URL": far.database_url, "REDIS_URL": far.redis_url}
        plan.meter = far.relay_cpu_s
        rtt = measured_rtt(far)
        log(f"RTT {rtt_ms:g} ms set: PostgreSQL SELECT 1 {rtt['postgres_ms']:.3f} ms, Redis PING {rtt['redis_ms']:.3f} ms")
        by_path = {path: curves.run_path(path, plan) for path in plan.paths}
        stacks = {name: {path: c[name] for path, c in by_path.items() if name in c} for name in plan.stacks}
        rows = ablation(far, plan)
    return {"rtt_ms": rtt_ms, "measured": rtt, "stacks": stacks, "ablation": rows, "commit": commit()}


def stopped(*_: object) -> None:
    raise SystemExit(143)  # the test host's servers are moved back, and the namespace removed, on the way out


def main() -> None:
    signal.signal(signal.SIGTERM, stopped)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rtt-ms", default="0.25,1", help="round-trip times to measure, in ms, comma-separated")
    parser.add_argument("--quick", action="store_true", help="ours only, hit and post, short steps (CI)")
    parser.add_argument("--stacks", default=",".join(curves.STACKS))
    parser.add_argument("--slo-ms", type=float, default=curves.SLO_MS)
    parser.add_argument("--publish", action="store_true")
    args = parser.parse_args()
    if not Hosts.available():  # make bench goes on without this section where it cannot run
        log("bench-network skipped: test hosts need root, iproute2 and iptables (ops/hosts.py)")
        return
    started = time.time()
    dsn = prepare_stack()
    stacks = ["ours"] if args.quick else [s for s in args.stacks.split(",") if s != "bare-protocol"]
    plan = curves.Plan(seconds=2.0 if args.quick else 3.0, warmup=1.0, slo_ms=args.slo_ms,
                       fractions=curves.QUICK_FRACTIONS, stacks=stacks,
                       paths=["hit", "post"] if args.quick else PATHS, peer_token=signed_token())
    path = RESULTS / "network-quick.json" if args.quick else OUT
    result = json.loads(path.read_text()) if path.exists() else {"rtts": {}}
    found = []
    for rtt in (float(x) for x in args.rtt_ms.split(",")):
        result["rtts"][f"{rtt:g}"] = run = at_rtt(rtt, plan)
        found += problems(run)
    if not port_open(bench_settings().stack_pg_port) or not port_open(bench_settings().stack_redis_port):
        found.append("the stack's PostgreSQL and Redis are not back on the machine's loopback")
    server_cpu, load_cpu = cpus()
    result["facts"] = facts(dsn, stack.urls(bench_settings())[1], server_cpu=server_cpu, load_cpu=load_cpu,
                            relay_cpu=load_cpu)
    result["plan"] = {k: v for k, v in plan.__dict__.items() if k in ("seconds", "warmup", "fractions", "slo_ms", "loose_factor", "stacks", "paths")}
    result["elapsed_s"] = time.time() - started
    write_json(path, result)
    if args.publish:
        publish(result)
    log(f"network runs done in {result['elapsed_s']:.0f} s")
    for problem in found:
        log(f"PROBLEM: {problem}")
    if found:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
