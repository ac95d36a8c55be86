"""HTTP load runs: endpoints, worker counts, ablations, the peer stack, constant-rate latency and
the cross-worker visibility bound. Writes bench/results/http.json (read by bench/report.py).

    python -m bench.load [--quick] [--only PART]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench import ceiling, http1, openloop
from bench.facts import facts
from bench.harness import (
    BENCH_ENV,
    HOT_TAG,
    BalancerServer,
    Loaded,
    Server,
    bench_settings,
    cpus,
    flush_cache,
    log,
    own_keys,
    prepare_stack,
    signed_token,
    token,
    write_json,
    wrk,
)
from bench.paths import RESULTS
from bench.peers import commands as peers
from bench.report.markdown import commit_of
from bench.scrape import between, try_scrape
from bench.seed import BENCH_SPEC
from ops import stack
from service.settings import ROOT

LOGIN_CONNECTIONS = 16
# Each tuning and the setting that switches it off.
ABLATIONS: dict[str, dict[str, str]] = {
    "protocol fast path off (cached searches through Sanic)": {"USE_FAST_HITS": "false"},
    "responses finished by a Sanic middleware and written by Sanic (not the protocol)": {"FINISH_IN_PROTOCOL": "false"},
    "lean search off (searches not cached in the worker through Sanic)": {"USE_LEAN_SEARCH": "false"},
    "lean post off (posts through Sanic)": {"USE_LEAN_POST": "false"},
    "lean pool off (asyncpg's acquire and release)": {"USE_LEAN_POOL": "false"},
    "post batching off (each post its own statement)": {"POST_BATCH_MAX": "1"},
    "post cache updates one by one (not together)": {"POST_UPDATES_TOGETHER": "false"},
    "deadline watch off (asyncpg's timer per statement)": {"USE_DEADLINE_WATCH": "false"},
    "garbage collector freeze off (start-up's objects walked by every full collection)": {"USE_GC_FREEZE": "false"},
    "uvloop off": {"USE_UVLOOP": "false"},
    "orjson off (stdlib json)": {"USE_ORJSON": "false"},
    # The lean client always parses with hiredis: this row is redis-py with its pure-Python parser,
    # to be read against the row with redis-py and hiredis below.
    "redis-py, hiredis off (pure-Python parser)": {"USE_HIREDIS": "false", "USE_WIRE_CLIENT": "false"},
    "pipelining off": {"USE_PIPELINE": "false"},
    "generic plans off (each search planned anew)": {"USE_GENERIC_PLANS": "false"},
    "redis-py for cache commands (lean client off)": {"USE_WIRE_CLIENT": "false"},
    "version read in its own round trip": {"CACHE_READ_VERSION": "false"},
    "tweet JSON built per read (not stored)": {"STORED_TWEET_JSON": "false"},
    "in-process cache off": {"LOCAL_CACHE_TTL": "0"},
    "token cache off": {"TOKEN_CACHE_SIZE": "0"},
    "access log on": {"ACCESS_LOG": "true"},
    "pool size 1": {"DB_POOL_MAX": "1"},
    "metrics off": {"METRICS_ENABLED": "false"},
}
# Where a tuning is not on an endpoint's path at all, it is not measured there.
NOT_ON_PATH = {("responses finished by a Sanic middleware and written by Sanic (not the protocol)", "hit"),
               ("lean search off (searches not cached in the worker through Sanic)", "hit"),
               ("lean search off (searches not cached in the worker through Sanic)", "post"),
               ("protocol fast path off (cached searches through Sanic)", "miss"),
               ("protocol fast path off (cached searches through Sanic)", "bypass"),
               ("protocol fast path off (cached searches through Sanic)", "post"),
               ("redis-py, hiredis off (pure-Python parser)", "bypass"), ("pipelining off", "bypass"),
               ("redis-py for cache commands (lean client off)", "bypass"),
               ("in-process cache off", "bypass"), ("in-process cache off", "post"),
               ("in-process cache off", "miss"), ("version read in its own round trip", "bypass"),
               ("version read in its own round trip", "post"),
               ("post batching off (each post its own statement)", "hit"),
               ("post batching off (each post its own statement)", "miss"),
               ("post batching off (each post its own statement)", "bypass"),
               ("post cache updates one by one (not together)", "hit"),
               ("post cache updates one by one (not together)", "miss"),
               ("post cache updates one by one (not together)", "bypass"),
               ("generic plans off (each search planned anew)", "hit"),
               ("tweet JSON built per read (not stored)", "hit"), ("tweet JSON built per read (not stored)", "post")}
# The paths that ask PostgreSQL on every request, each against its statements' ceiling.
DATABASE_PATHS = ("bypass", "miss", "post", "deep_offset", "deep_keyset")
CONNECTIONS = 64  # wrk's connections, and the ceiling client's


@dataclass
class Config:
    label: str
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    peer: str | None = None  # one of bench.peers.PEERS, instead of the service
    instances: int = 0  # N single-process instances behind HAProxy (ops.balancer); 0: direct
    shared_cpus: bool = False  # server and load generator on every CPU (as with several workers)


@dataclass
class Plan:
    seconds: float
    warmup: float
    rounds: int
    ablation_rounds: int
    full: bool
    deep_before_id: int = 0  # keyset deep pages start this deep in the hot tag (bench.ceiling)


def measure(config: Config, endpoints: list[str], plan: Plan, rounds: int) -> dict[str, dict[str, Any]]:
    """One server for the config; endpoints measured in interleaved rounds; medians kept."""
    return measure_together([(config, endpoints)], plan, rounds)[0]


def measure_together(members: list[tuple[Config, list[str]]], plan: Plan, rounds: int) -> list[dict[str, dict[str, Any]]]:
    """A server for each config, all running at once on the same CPUs (each on its own port); in
    every round each endpoint is loaded on each server in turn, so the ratios between them come from
    the same minutes of a noisy machine, not from runs minutes apart. Medians kept, per member."""
    servers = [server_for(config, i) for i, (config, _) in enumerate(members)]
    bearers: list[str] = []
    samples: list[dict[str, list[dict[str, Any]]]] = [{e: [] for e in endpoints} for _, endpoints in members]
    cold = {"cursor": 0}  # one sequence of cold tags for all: no server sees another's tag warm
    order = list(dict.fromkeys(e for _, endpoints in members for e in endpoints))

    def run(i: int, endpoint: str, seconds: float) -> dict[str, Any]:
        """One wrk run, with what the service's /metrics counted during it (not for peers)."""
        config, (server, _, load_cpu) = members[i][0], servers[i]
        settle = config.workers > 1
        before = None if config.peer else try_scrape(server.metrics_urls, settle)
        result = load(server, bearers[i], load_cpu, endpoint, seconds)
        result["metrics"] = between(before, None if config.peer else try_scrape(server.metrics_urls, settle))
        return result

    def load(server: Loaded, bearer: str, load_cpu: str | None, endpoint: str, seconds: float) -> dict[str, Any]:
        if endpoint == "login":  # within the hashing admission bound (HASH_THREADS + HASH_QUEUE):
            # more concurrent logins are shed with 503 at once, which would count as throughput
            return wrk(server, endpoint, seconds, bearer, load_cpu, connections=LOGIN_CONNECTIONS)
        if endpoint == "deep_keyset":
            return wrk(server, endpoint, seconds, bearer, load_cpu, script_env={"BEFORE": str(plan.deep_before_id)})
        if endpoint != "miss":
            return wrk(server, endpoint, seconds, bearer, load_cpu)
        flush_cache()  # every request a tag not yet cached: the full fill path
        result = wrk(server, "cold", seconds, bearer, load_cpu,
                     script_env={"START": str(cold["cursor"]), "COUNT": str(BENCH_SPEC.cold_tags)})
        cold["cursor"] += result["requests"] + 64
        return result

    def each(endpoint: str) -> list[int]:
        return [i for i, (_, endpoints) in enumerate(members) if endpoint in endpoints]

    with contextlib.ExitStack() as stack_:
        for (config, _), (server, _, _) in zip(members, servers, strict=True):
            stack_.enter_context(server)
            bearers.append(signed_token() if config.peer else token(server.url))
        for endpoint in order:
            for i in each(endpoint):
                run(i, endpoint, plan.warmup)
        for _ in range(rounds):
            for endpoint in order:
                for i in each(endpoint):
                    samples[i][endpoint].append(run(i, endpoint, plan.seconds))
    outs = []
    for (config, _), (_, server_cpu, load_cpu), runs in zip(members, servers, samples, strict=True):
        setup = {"server_cpus": server_cpu, "load_cpu": load_cpu or "shared",
                 "settings": {k: v for k, v in server_env(config).items() if k not in peers.SECRETS},
                 "seconds": plan.seconds, "rounds": rounds,
                 "side_by_side_with": [c.label for c, _ in members if c is not config]}
        out = {endpoint: {**medians(r), **setup} for endpoint, r in runs.items()}
        for endpoint, r in out.items():
            log(f"  {config.label:<34} {endpoint:<11} {r['rps']:>8.0f} req/s  p99 {r['p99_ms']:.1f} ms  "
                f"errors {r['errors']}")
        outs.append(out)
    return outs


def server_env(config: Config) -> dict[str, str]:
    return {**config.env, "WORKERS": str(config.workers)}


def server_for(config: Config, index: int) -> tuple[Server | BalancerServer, str, str | None]:
    """(the config's server, not started yet; its CPUs; the load generator's CPU). Member `index`
    of a side-by-side group listens on its own port."""
    server_cpu, load_cpu = cpus()
    env = own_keys(server_env(config), index)
    if config.workers > 1 or config.instances or config.shared_cpus:
        server_cpu, load_cpu = "0-1", None  # all CPUs for the server; the load generator shares them
    port = int(BENCH_ENV["PORT"]) + index
    if config.peer:
        command, extra = peers.command(config.peer, bench_settings(), config.workers, port)
        env.update(extra)
        return Server(env, server_cpu, command), server_cpu, load_cpu
    if config.instances:
        if index:
            raise ValueError("instances behind HAProxy run alone")
        return BalancerServer(config.instances, env), server_cpu, load_cpu
    if index:
        env["PORT"] = str(port)
    return Server(env, server_cpu), server_cpu, load_cpu


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """An endpoint's rounds summed up: the median of each figure, errors added, every round's req/s."""
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], float | int)}
    med["errors"] = sum(r["errors"] for r in runs)
    med["cpu_us_per_request"] = {part: statistics.median(r["cpu_us_per_request"][part] for r in runs)
                                 for part in runs[0]["cpu_us_per_request"]}
    med["metrics"] = median_metrics([r["metrics"] for r in runs])
    return {**med, "runs": [round(r["rps"]) for r in runs], "tool": runs[0]["tool"]}


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds' median hit ratio, share answered at the protocol and pool wait (bench.scrape),
    where the service reported them, and the searches answered at the protocol in all."""
    out: dict[str, Any] = {}
    for key in ("hit_ratio", "fast_share", "pool_wait_us_mean"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = statistics.median(values)
    if any("fast_hits" in r for r in runs):
        out["fast_hits"] = sum(r.get("fast_hits", 0) for r in runs)
    return out


def constant_rate(config: Config, endpoint: str, rps: float, seconds: float) -> dict[str, Any]:
    """Evenly spaced requests at rps (bench/openloop, pinned to the load CPU), latency from when due."""
    server_cpu, load_cpu = cpus()
    path = {"hit": f"/api/v1/search-tweets?tag={HOT_TAG}&page=1&page_size=10",
            "bypass": f"/api/v1/search-tweets?tag={HOT_TAG}&page=1&page_size=10", "floor": "/ping"}[endpoint]
    with Server(config.env, server_cpu) as server:
        bearer = token(server.url)
        wrk(server, endpoint, 2, bearer, load_cpu)
        stream = openloop.write_stream(RESULTS / "streams" / f"constant-{endpoint}.bin",
                                       [http1.request("GET", path, bearer)])
        r = openloop.offer(server.port, stream, rps, seconds, warmup=1.0, cpu=load_cpu, poisson=False)
    lat = r["latency_us"]
    result = {"target_rps": rps, "achieved_rps": r["achieved_rps"], "achieved_share": r["achieved_share"],
              "errors": r["non_2xx"] + r["transport_errors"] + r["timed_out"],
              "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000, "p99_ms": lat["p99"] / 1000,
              "p999_ms": lat["p999"] / 1000, "generator_cpu_s": r["cpu_s"]["user"] + r["cpu_s"]["system"],
              "tool": "bench/openloop (evenly spaced, latency from when due)", "settings": config.env,
              "seconds": seconds}
    log(f"  constant rate {endpoint:<6} {rps:>7.0f} req/s target: achieved {result['achieved_share']:.1%}, "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, p99.9 {result['p999_ms']:.2f} ms, "
        f"generator CPU {result['generator_cpu_s']:.2f} s")
    return result


def visibility(samples: int) -> dict[str, Any]:
    """Post on one connection, poll from 8 others (spread over both workers) until each sees it,
    while wrk keeps the hit endpoint busy. The delay is the time from the 201 to the last
    connection seeing the tweet at the top of page 1."""
    env = {"WORKERS": "2"}
    with Server(env, "0-1") as server:
        bearer = token(server.url)
        stop = threading.Event()

        def background() -> None:
            while not stop.is_set():
                wrk(server, "hit", 2, bearer, None, connections=4)

        thread = threading.Thread(target=background, daemon=True)
        thread.start()
        try:
            delays = asyncio.run(_visibility(server.port, bearer, samples))
        finally:
            stop.set()
            thread.join()
    delays_ms = sorted(d * 1000 for d in delays)

    def pct(p: float) -> float:
        return delays_ms[min(len(delays_ms) - 1, int(len(delays_ms) * p / 100))]

    result = {"samples": len(delays_ms), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
              "max_ms": delays_ms[-1], "workers": 2, "pollers": 8,
              "background": "wrk on the hit endpoint, 4 connections",
              "measures": "from the 201 until all 8 polling connections (both workers) got a page "
                          "showing the tweet; includes one poll round trip"}
    log(f"  visibility across workers: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    return result


async def _visibility(port: int, bearer: str, samples: int) -> list[float]:
    tag = f"vis{int(time.time())}"
    search = f"/api/v1/search-tweets?tag={tag}&page_size=1"
    poster = await http1.Client.open(port, bearer)
    pollers = [await http1.Client.open(port, bearer) for _ in range(8)]
    await poster.call("POST", "/api/v1/tweet", json.dumps({"msg": f"#{tag} warm"}).encode())
    for p in pollers:
        await p.call("GET", search)

    async def until_seen(client: http1.Client, tweet_id: int, since: float) -> float:
        while (await client.call("GET", search))["data"][0]["id"] != tweet_id:
            pass
        return time.perf_counter() - since

    delays = []
    for i in range(samples):
        r = await poster.call("POST", "/api/v1/tweet", json.dumps({"msg": f"#{tag} {i}"}).encode())
        posted_at, new_id = time.perf_counter(), r["data"]["id"]
        delays.append(max(await asyncio.gather(*(until_seen(p, new_id, posted_at) for p in pollers))))
    for c in (poster, *pollers):
        c.close()
    return delays


def postgres_ceiling(dsn: str, seconds: float) -> dict[str, Any]:
    """PostgreSQL alone on each database-bound path's statements (bench/ceiling.py), pinned like wrk."""
    _, load_cpu = cpus()
    cmd = (["taskset", "-c", load_cpu] if load_cpu else []) + [
        sys.executable, "-m", "bench.ceiling", "--dsn", dsn, "--paths", ",".join(DATABASE_PATHS),
        "--seconds", str(seconds), "--connections", f"8,{CONNECTIONS}"]
    out: dict[str, Any] = json.loads(subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                                    check=True).stdout)
    for path, r in out.items():
        log(f"  ceiling {path:<12} {r['rps']:>8.0f} statements/s at {r['connections']} connections "
            f"({r['by_connections']})  p99 {r['p99_ms']:.1f} ms  client CPU {r['client_cpu_pct']:.0f}%")
    return out


# The parts of a run, each a set of RESULTS.md's sections: `--only PART` measures one again and
# keeps the others as http.json has them, each part saying the commit it was measured at.
PARTS = ("endpoints", "workers", "ablation", "constant_rate", "visibility", "ceiling")
FULL_ONLY = ("workers", "ablation")  # not in a quick run


def run(quick: bool, only: str | None = None, earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every part (or `only` one, the rest kept from `earlier`), with the facts of this run."""
    plan = Plan(seconds=2 if quick else 4, warmup=2 if quick else 3, rounds=1 if quick else 3,
                ablation_rounds=1 if quick else 2, full=not quick)
    started = time.time()
    log("preparing the bench stack (seeded once, reset every run)")
    dsn = prepare_stack()
    plan.deep_before_id = asyncio.run(ceiling.deep_before_id(dsn))
    server_cpu, load_cpu = cpus()
    settings = bench_settings()
    # What the prose of RESULTS.md says of the runs is recorded with them (bench/report/).
    run_facts = facts(dsn, stack.urls(settings)[1], server_cpu=server_cpu, load_cpu=load_cpu,
                      connections=CONNECTIONS, seed=BENCH_SPEC.__dict__, login_connections=LOGIN_CONNECTIONS,
                      hash_admission=settings.hash_threads + settings.hash_queue,
                      side_by_side=True, db_pool_max=settings.pool_max)
    results: dict[str, Any] = earlier if earlier is not None else {
        "plan": plan.__dict__, "endpoints": {}, "workers": {}, "ablation": {}, "peer": {},
        "constant_rate": {}, "visibility": None}
    parts = [only] if only else [p for p in PARTS if plan.full or p not in FULL_ONLY]
    for part in parts:
        MEASURE[part](results, plan, dsn, quick)
    results["measured_at"] = measured_at(results, parts, run_facts["commit"])
    results["facts"] = run_facts
    results["elapsed_s"] = time.time() - started
    return results


def measured_at(earlier: dict[str, Any], parts: list[str], commit: str) -> dict[str, str | None]:
    """The commit each part was measured at: `commit` for the parts measured now; a part kept, the
    one it ran at (for a run recorded before parts were, the run's own)."""
    kept = earlier.get("measured_at") or dict.fromkeys(PARTS, commit_of(earlier))
    return {**kept, **dict.fromkeys(parts, commit)}


def measure_endpoints(results: dict[str, Any], plan: Plan, dsn: str, quick: bool) -> None:
    """The service, the bare Sanic app and each peer side by side: one server each, loaded in turn
    within every round, so each ours / peer ratio is of the same minutes."""
    base, cold = Config("default"), Config("cache off", {"CACHE_ENABLED": "false"})
    log("endpoints, 1 worker, side by side with the bare Sanic app and the peer stacks")
    paths = ["floor", "hit", "miss", "post", "deep_offset", "deep_keyset"]
    together = measure_together(
        [(base, [*paths[:4], "login", *paths[4:]]), (Config("bare Sanic", peer="bare-sanic"), ["floor"]),
         *[(Config(peer, peer=peer), paths) for peer in peers.PEERS]], plan, plan.rounds)
    results["endpoints"]["default"], results["bare_floor"] = together[0], together[1]["floor"]
    log("cache off, side by side with the peer stacks' cache off")
    off = {"CACHE_ENABLED": "false"}
    together_off = measure_together(
        [(cold, ["floor", "bypass"]),
         *[(Config(f"{peer} cache off", off, peer=peer), ["floor", "bypass"]) for peer in peers.PEERS]],
        plan, plan.rounds)
    results["endpoints"]["cache off"] = together_off[0]
    for i, peer in enumerate(peers.PEERS):
        results["peer"][peer] = {"default": together[2 + i], "cache off": together_off[1 + i]}


def measure_constant_rate(results: dict[str, Any], plan: Plan, dsn: str, quick: bool) -> None:
    """Each endpoint at half the maximum the endpoints part measured (this run's, or the one kept)."""
    log("constant rate at 50% of each endpoint's measured maximum")
    base, cold = Config("default"), Config("cache off", {"CACHE_ENABLED": "false"})
    for endpoint, config, source in (("floor", base, "default"), ("hit", base, "default"),
                                     ("bypass", cold, "cache off")):
        peak = results["endpoints"][source][endpoint]["rps"]
        results["constant_rate"][endpoint] = constant_rate(config, endpoint, peak / 2, 3 if quick else 6)


def measure_visibility(results: dict[str, Any], plan: Plan, dsn: str, quick: bool) -> None:
    log("cross-worker visibility of a new tweet under load")
    results["visibility"] = visibility(30 if quick else 100)


def measure_ceiling(results: dict[str, Any], plan: Plan, dsn: str, quick: bool) -> None:
    log("PostgreSQL alone on each database-bound path's statements (bench/ceiling.py)")
    results["postgres_ceiling"] = postgres_ceiling(dsn, 3 if quick else 5)


def measure_workers(results: dict[str, Any], plan: Plan, dsn: str, quick: bool) -> None:
    log("worker counts")
    cold = Config("cache off", {"CACHE_ENABLED": "false"})
    for workers in (1, 2):
        results["workers"][str(workers)] = {
            **measure(Config(f"{workers} workers", workers=workers), ["floor", "hit", "post"], plan,
                      plan.ablation_rounds),
            **{k: v for k, v in measure(Config(f"{workers} workers cache off", cold.env, workers=workers),
                                        ["bypass"], plan, plan.ablation_rounds).items()}}


def measure_ablation(results: dict[str, Any], plan: Plan, dsn: str, quick: bool) -> None:
    """Each tuning switched off in turn, and single-flight under a refill storm."""
    log("ablation: each tuning switched off in turn")
    cold = Config("cache off", {"CACHE_ENABLED": "false"})
    # What the rows are compared with: every tuning on, measured as they are (a server alone, these
    # rounds), not the side-by-side run above, whose regime differs (for posts, the peers' inserts
    # just before each of ours).
    results["ablation_base"] = ablation_row(Config("every tuning on"), plan, cold)
    for label, env in ABLATIONS.items():
        results["ablation"][label] = ablation_row(Config(label, env), plan, cold)
    log("single-flight under a refill storm (1 s cache TTL, no in-process cache)")
    storm = {"CACHE_TTL_SECONDS": "1", "CACHE_TTL_JITTER": "0", "LOCAL_CACHE_TTL": "0"}
    results["ablation"]["refill storm, single-flight on"] = measure(
        Config("storm, single-flight on", storm), ["hit"], plan, plan.ablation_rounds)
    results["ablation"]["refill storm, single-flight off"] = measure(
        Config("storm, single-flight off", {**storm, "USE_SINGLEFLIGHT": "false"}), ["hit"], plan,
        plan.ablation_rounds)


MEASURE = {"endpoints": measure_endpoints, "workers": measure_workers, "ablation": measure_ablation,
           "constant_rate": measure_constant_rate, "visibility": measure_visibility, "ceiling": measure_ceiling}


def ablation_row(config: Config, plan: Plan, cold: Config) -> dict[str, Any]:
    """floor, hit, miss and post on the config's server, bypass on its cache-off twin: each where
    the tuning the config switches off is on the path."""
    hot = [e for e in ("floor", "hit", "miss", "post") if (config.label, e) not in NOT_ON_PATH]
    row = measure(config, hot, plan, plan.ablation_rounds)
    if (config.label, "bypass") not in NOT_ON_PATH:
        row.update(measure(Config(config.label + ", cache off", {**config.env, **cold.env}), ["bypass"], plan,
                           plan.ablation_rounds))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=PARTS, help="measure this part again, keeping the others as "
                        "bench/results/http.json has them")
    args = parser.parse_args()
    path = RESULTS / ("http-quick.json" if args.quick else "http.json")
    earlier = None
    if args.only:
        if not path.exists():
            sys.exit(f"{path} holds no run to keep the other parts of: run make bench first")
        earlier = json.loads(path.read_text())
    results = run(args.quick, args.only, earlier)
    write_json(path, results)
    log(f"HTTP runs done in {results['elapsed_s']:.0f}s")


if __name__ == "__main__":
    main()
