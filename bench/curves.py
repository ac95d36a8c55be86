"""Latency against offered load, open loop, for every path and stack: the capacity users measure.

For each stack (ours and every peer) and path, one server pinned to the server CPU:
1. its own maximum, closed loop (wrk, 64 connections);
2. Poisson arrivals offered at fractions of that maximum (and past it) by bench/openloop, pinned to
   the load CPU, latency counted from when each request was due;
3. its capacity at the SLO: the highest offered rate at which p99 <= SLO_MS, at least 98% of the
   requests due were answered 2xx within the window, and so was every lower rate; narrowed by
   bisection between the last rate that held and the first that did not.

The generator's own proof comes first: against a bare protocol answering constant bytes
(bench/peers/bare_protocol.py), at the top rate offered to any stack, it must achieve >= 99% of
its target; its CPU time is recorded.

    python -m bench.curves [--quick] [--stacks ours,granian,...] [--paths hit,miss,...] [--slo-ms 10]

Writes bench/results/curves.json and publishes RESULTS.md's capacity section and its plots.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import http1, openloop
from bench.facts import facts
from bench.harness import (
    BENCH_ENV,
    HOT_TAG,
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
from bench.report.capacity import publish as publish_capacity
from bench.seed import BENCH_SPEC
from ops import stack

SLO_MS = 10.0
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.85, 1.0, 1.15)
QUICK_FRACTIONS = (0.25, 0.6, 0.9, 1.1)
BISECTIONS = 2
LOOSE_SLO_FACTOR = 5  # a second capacity at 5x the SLO: where a path's floor (a commit) is above it
PATHS = ("hit", "miss", "bypass", "post")
STACKS = ("ours", *peers.PEERS, "bare-protocol")
MIXED_USERS = 50
HELD_SHARE = 0.98  # of the requests due in the window, answered 2xx within it
PROOF_SHARE = 0.99  # the generator against constant bytes
HIT_PATH = f"/api/v1/search-tweets?tag={HOT_TAG}&page=1&page_size=10"
WRK_ENDPOINT = {"hit": "hit", "bypass": "bypass", "post": "post", "miss": "cold", "mixed": "hit"}
CACHE_OFF = {"CACHE_ENABLED": "false"}


@dataclass
class Plan:
    seconds: float
    warmup: float
    fractions: tuple[float, ...]
    slo_ms: float
    stacks: list[str]
    paths: list[str]
    loose_factor: float = LOOSE_SLO_FACTOR
    cold_cursor: int = 0
    users: list[str] = field(default_factory=list)  # the mixed stream's tokens
    # bench-network's: the servers' DATABASE_URL and REDIS_URL (the stack elsewhere), a token
    # signed before it moved, and the relay's CPU seconds so far (None: no relay)
    env: dict[str, str] = field(default_factory=dict)
    peer_token: str = ""
    meter: Callable[[], float] | None = None


def post_body(rng: random.Random, n: int) -> bytes:
    """A post like bench/wrk/post.lua's: 1-2 tags on a 1/k spread over the seeded topics."""
    def topic() -> str:
        return f"topic{int(2.718281828 ** (rng.random() * 6.907755))}"
    tags = [topic()] + ([topic()] if n % 2 else [])
    return json.dumps({"msg": f"open loop post {n} #{topic()}", "tags": tags}).encode()


def stream(path: str, bearer: str, plan: Plan, count: int) -> list[bytes]:
    """The requests a step sends, in order: `count` distinct ones where the path needs them."""
    if path in ("hit", "bypass"):
        return [http1.request("GET", HIT_PATH, bearer)]
    if path == "miss":  # a tag not cached yet on every request (the cache is flushed per step)
        start, plan.cold_cursor = plan.cold_cursor, plan.cold_cursor + count
        return [http1.request("GET", f"/api/v1/search-tweets?tag=cold{(start + i) % BENCH_SPEC.cold_tags + 1}"
                              "&page=1&page_size=10", bearer) for i in range(count)]
    rng = random.Random(count)
    if path == "post":
        return [http1.request("POST", "/api/v1/tweet", bearer, post_body(rng, i)) for i in range(min(count, 20000))]
    return mixed(rng, plan, count)  # registers are not repeated: as long as the step


def mixed(rng: random.Random, plan: Plan, count: int) -> list[bytes]:
    """Locust's Mixed scenario (loadtests/locustfile.py) as a stream: 80% search (a hot topic, page 1
    nine times in ten), 15% post, 4% login or /me, 1% register (a new user each time)."""
    out = []
    for i in range(count):
        bearer, roll = rng.choice(plan.users), rng.random()
        if roll < 0.80:
            page = 1 if rng.random() < 0.9 else rng.randint(2, 5)
            tag = f"topic{int(2.718281828 ** (rng.random() * 6.907755))}"
            out.append(http1.request("GET", f"/api/v1/search-tweets?tag={tag}&page={page}&page_size=10", bearer))
        elif roll < 0.95:
            out.append(http1.request("POST", "/api/v1/tweet", bearer, post_body(rng, i)))
        elif roll < 0.97:
            body = json.dumps({"username": f"bench_{rng.randint(1, MIXED_USERS)}", "password": "bench-password"})
            out.append(http1.request("POST", "/api/v1/login", "", body.encode()))
        elif roll < 0.99:
            out.append(http1.request("GET", "/api/v1/me", bearer))
        else:
            body = json.dumps({"username": f"ol_{time.time_ns():x}_{i}", "password": "open loop password",
                               "full_name": "Open Loop"})
            out.append(http1.request("POST", "/api/v1/register", "", body.encode()))
    return out


def step(port: int, path: str, bearer: str, plan: Plan, rate: float, load_cpu: str | None) -> dict[str, Any]:
    """One offered rate, judged on the better of two runs where the first does not hold the SLO:
    on a shared machine one stall spoils a run's p99, and every stack is judged alike."""
    point = offered(port, path, bearer, plan, rate, load_cpu)
    if not point["held"]:
        again = offered(port, path, bearer, plan, rate, load_cpu)
        point = again if again["held"] or again["p99_ms"] < point["p99_ms"] else point
        point["runs"] = 2
    return point


def offered(port: int, path: str, bearer: str, plan: Plan, rate: float, load_cpu: str | None) -> dict[str, Any]:
    """One run at one offered rate: its stream written out, the cache flushed first for a miss."""
    count = int(rate * (plan.seconds + plan.warmup) * 1.2) + 1000
    requests = stream(path, bearer, plan, count)
    if path == "miss":
        flush(plan)
    file = openloop.write_stream(RESULTS / "streams" / f"{path}.bin", requests)
    r = openloop.offer(port, file, rate, plan.seconds, warmup=plan.warmup, cpu=load_cpu)
    point = {"offered_rps": r["offered_rps"], "target_rps": rate, "achieved_rps": r["achieved_rps"],
             "achieved_share": r["achieved_share"], "p50_ms": r["latency_us"]["p50"] / 1000,
             "p99_ms": r["latency_us"]["p99"] / 1000, "p999_ms": r["latency_us"]["p999"] / 1000,
             "non_2xx": r["non_2xx"], "transport_errors": r["transport_errors"] + r["timed_out"],
             "generator_cpu_s": r["cpu_s"]["user"] + r["cpu_s"]["system"], "runs": 1}
    point["held"] = held(point, plan.slo_ms)
    log(f"    {rate:>9,.0f} req/s offered: achieved {point['achieved_share']:.1%}, p50 {point['p50_ms']:.2f} ms, "
        f"p99 {point['p99_ms']:.2f} ms, p99.9 {point['p999_ms']:.2f} ms{'' if point['held'] else '  (not held)'}")
    return point


def held(point: dict[str, Any], slo_ms: float) -> bool:
    """Whether a rate was held at the SLO: p99 within it, and the requests due answered 2xx in time."""
    return bool(0 <= point["p99_ms"] <= slo_ms and point["achieved_share"] >= HELD_SHARE)


def capacity_of(points: list[dict[str, Any]], slo_ms: float) -> float:
    """The highest offered rate held with every lower rate held too (0 if the lowest was not)."""
    best = 0.0
    for point in sorted(points, key=lambda p: p["target_rps"]):
        if not held(point, slo_ms):
            break
        best = point["offered_rps"]
    return best


def bisect(points: list[dict[str, Any]], slo_ms: float) -> float | None:
    """The rate halfway between the last held at slo_ms and the first not (None: all held)."""
    ordered = sorted(points, key=lambda p: p["target_rps"])
    first_missed = next((i for i, p in enumerate(ordered) if not held(p, slo_ms)), None)
    if first_missed is None:
        return None
    low = ordered[first_missed - 1]["target_rps"] if first_missed else 0.0
    return float(low + ordered[first_missed]["target_rps"]) / 2


@dataclass
class Member:
    """One stack's server on a path, loaded in turn with the others: its token and its curve."""

    name: str
    server: Server
    bearer: str
    peak: dict[str, Any] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)


def peak_of(m: Member, path: str, plan: Plan, load_cpu: str | None) -> dict[str, Any]:
    """The stack's maximum on the path, closed loop (wrk), with the relay's CPU where there is one."""
    endpoint = WRK_ENDPOINT[path]
    env = {"START": "0", "COUNT": str(BENCH_SPEC.cold_tags)} if endpoint == "cold" else None
    if path == "miss":
        flush(plan)
    relay_before = plan.meter() if plan.meter else 0.0
    peak = wrk(m.server, endpoint, plan.seconds, m.bearer, load_cpu, script_env=env)
    if plan.meter:
        peak["relay_us_per_request"] = 1e6 * (plan.meter() - relay_before) / max(1, peak["requests"])
    if path == "mixed":  # wrk has no mix: the maximum is found open loop
        peak = {"rps": mixed_peak(m.server.port, m.bearer, plan, load_cpu, peak["rps"])}
    log(f"  {m.name}: maximum {peak['rps']:,.0f} req/s")
    return peak


def finished(m: Member, plan: Plan) -> dict[str, Any]:
    loose = plan.loose_factor * plan.slo_ms
    m.points.sort(key=lambda p: p["target_rps"])
    return {"max_rps": m.peak["rps"], "max_tool": "openloop" if "requests" not in m.peak else "wrk, 64 connections",
            "points": m.points, "capacity_rps": capacity_of(m.points, plan.slo_ms),
            "capacity_loose_rps": capacity_of(m.points, loose),
            **{k: m.peak[k] for k in ("cpu_us_per_request", "relay_us_per_request") if k in m.peak}}


def run_path(path: str, plan: Plan) -> dict[str, dict[str, Any]]:
    """Every stack's curve on one path, side by side: a server each (on ports of their own, all on
    the server CPU), each loaded in turn at every step, so that ours / peer comes from the same
    minutes of a noisy machine. Then the bisection at the SLO (the looser one where even the
    lowest rate missed it), stack by stack."""
    _, load_cpu = cpus()
    members: list[Member] = []
    with contextlib.ExitStack() as held:
        for i, name in enumerate(n for n in plan.stacks if path in paths_of(n, plan)):
            server, peer = server_for(name, path, plan, i)
            held.enter_context(server)
            m = Member(name, server, (plan.peer_token or signed_token()) if peer else token(server.url))
            if name == "ours" and path == "hit":  # before the bare protocol starts with its bytes
                keep_hit_page(server.url, m.bearer)
            if name == "ours" and path == "mixed":
                plan.users = [token(server.url, f"bench_{i}") for i in range(1, MIXED_USERS + 1)]
            members.append(m)
        log(f"{path}: {', '.join(m.name for m in members)}, side by side")
        for m in members:
            m.peak = peak_of(m, path, plan, load_cpu)
        for fraction in plan.fractions:
            for m in members:
                m.points.append(step(m.server.port, path, m.bearer, plan, m.peak["rps"] * fraction, load_cpu))
        loose = plan.loose_factor * plan.slo_ms
        for _ in range(BISECTIONS):
            for m in members:
                rate = bisect(m.points, plan.slo_ms if capacity_of(m.points, plan.slo_ms) else loose)
                if rate is not None:
                    m.points.append(step(m.server.port, path, m.bearer, plan, rate, load_cpu))
    return {m.name: finished(m, plan) for m in members}


def merged(last: dict[str, Any], measured: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The curves just measured, and every curve of the last run (stack and path) not measured again,
    marked with the commit it was measured at."""
    out: dict[str, dict[str, Any]] = {}
    for name, curves in last["stacks"].items():
        out[name] = {path: {"measured_at": c.get("measured_at", last["facts"]["commit"]), **c}
                     for path, c in curves.items() if path not in measured.get(name, {})}
    for name, curves in measured.items():
        out.setdefault(name, {}).update(curves)
    return out


def mixed_peak(port: int, bearer: str, plan: Plan, load_cpu: str | None, hit_max: float) -> float:
    """The mix's maximum: what it achieves when offered more than it can take. Its logins and
    registrations hash passwords, so a tenth of the hit's maximum is usually past it (more would
    only queue for the drain); offered twice as much while it keeps up."""
    rate = hit_max / 10
    while True:
        r = offered(port, "mixed", bearer, plan, rate, load_cpu)
        if r["achieved_share"] < HELD_SHARE or rate >= hit_max:
            return float(r["achieved_rps"])
        rate *= 2


def flush(plan: Plan) -> None:
    """Redis emptied, wherever the plan's stack has it."""
    flush_cache(plan.env.get("REDIS_URL", ""))


def server_for(name: str, path: str, plan: Plan, index: int) -> tuple[Server, bool]:
    """(the stack's server for a path on port PORT + index, not started; whether it is a peer,
    with no login route)."""
    server_cpu, _ = cpus()
    port = int(BENCH_ENV["PORT"]) + index
    env = own_keys({**(CACHE_OFF if path == "bypass" else {}), "PORT": str(port)}, index)
    if name == "ours":
        return Server({**env, **plan.env}, server_cpu), False
    command, extra = peers.command(name, bench_settings(), 1, port)
    if name == "bare-protocol":
        extra["BODY_FILE"] = str(RESULTS / "streams" / "hit-page.json")
    return Server({**env, **extra, **plan.env}, server_cpu, command), True


def paths_of(name: str, plan: Plan) -> list[str]:
    if name == "bare-protocol":
        return ["hit"] if "hit" in plan.paths else []
    return [p for p in plan.paths if p != "mixed" or name == "ours"]  # the peers have no account routes


def keep_hit_page(url: str, bearer: str) -> None:
    """Our hit page's body, for the bare protocol to answer with (the same bytes)."""
    import httpx

    r = httpx.get(url + HIT_PATH, headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    r.raise_for_status()
    path = RESULTS / "streams" / "hit-page.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(r.content)


def proof(rate: float, plan: Plan) -> dict[str, Any]:
    """The generator against constant bytes at the top rate offered to any stack."""
    server_cpu, load_cpu = cpus()
    command, extra = peers.command("bare-protocol", bench_settings(), 1, int(BENCH_ENV["PORT"]))
    log(f"the generator's proof: {rate:,.0f} req/s against constant bytes")
    with Server(extra, server_cpu, command) as server:
        file = openloop.write_stream(RESULTS / "streams" / "proof.bin", [http1.request("GET", "/constant")])
        openloop.offer(server.port, file, rate / 2, 1.0, warmup=0.5, cpu=load_cpu)  # connections warm
        r = openloop.offer(server.port, file, rate, plan.seconds, warmup=plan.warmup, cpu=load_cpu)
    cpu = r["cpu_s"]["user"] + r["cpu_s"]["system"]
    out = {"target_rps": rate, "offered_rps": r["offered_rps"], "achieved_rps": r["achieved_rps"],
           "achieved_share": r["achieved_share"], "p50_ms": r["latency_us"]["p50"] / 1000,
           "p99_ms": r["latency_us"]["p99"] / 1000, "send_lag_p99_us": r["send_lag_us"]["p99"],
           "generator_cpu_s": cpu, "generator_us_per_request": 1e6 * cpu / max(1, r["ok"]),
           "wall_s": plan.seconds + plan.warmup, "held": r["achieved_share"] >= PROOF_SHARE}
    log(f"  achieved {out['achieved_share']:.2%} of {rate:,.0f} req/s, the generator used {cpu:.2f} s of CPU "
        f"({out['generator_us_per_request']:.1f} µs a request); p99 {out['p99_ms']:.2f} ms")
    return out


def run(plan: Plan) -> dict[str, Any]:
    started = time.time()
    dsn = prepare_stack()
    server_cpu, load_cpu = cpus()
    by_path = {path: run_path(path, plan) for path in plan.paths}
    stacks = {name: {path: curves[name] for path, curves in by_path.items() if name in curves}
              for name in plan.stacks}
    stacks = {name: paths for name, paths in stacks.items() if paths}
    return {"facts": facts(dsn, stack.urls(bench_settings())[1], server_cpu=server_cpu, load_cpu=load_cpu,
                           connections=openloop.CONNECTIONS, seed=BENCH_SPEC.__dict__),
            "plan": {k: v for k, v in plan.__dict__.items() if k not in ("users", "cold_cursor", "env", "peer_token", "meter")},
            "stacks": stacks, "elapsed_s": time.time() - started}


def top_rate(stacks: dict[str, Any]) -> float:
    """The top rate offered to any stack but the bare protocol, the proof's own server (its curve
    goes past what it can take)."""
    return max(float(p["target_rps"]) for name, curves in stacks.items() if name != "bare-protocol"
               for c in curves.values() for p in c["points"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rates, shorter steps (CI)")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--paths", default=",".join([*PATHS, "mixed"]))
    parser.add_argument("--slo-ms", type=float, default=SLO_MS)
    parser.add_argument("--publish", action="store_true", help="write RESULTS.md's section and plots")
    parser.add_argument("--merge", action="store_true",
                        help="keep the curves (stack and path) of the last run that this one does not measure")
    args = parser.parse_args()
    plan = Plan(seconds=2.0 if args.quick else 4.0, warmup=1.0, slo_ms=args.slo_ms,
                fractions=QUICK_FRACTIONS if args.quick else FRACTIONS,
                stacks=args.stacks.split(","), paths=args.paths.split(","))
    result = run(plan)
    path = RESULTS / ("curves-quick.json" if args.quick else "curves.json")
    if args.merge and path.exists():
        result["stacks"] = merged(json.loads(path.read_text()), result["stacks"])
    result["proof"] = proof(top_rate(result["stacks"]), plan)
    write_json(path, result)
    if args.publish:
        publish_capacity(result)
    log(f"curves done in {result['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
