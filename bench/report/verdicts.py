"""The report's judgements, as pure functions of measured numbers (unit-tested in
tests/unit/test_report_verdicts.py): targets met or missed, speedups, what bounds a path, and
the load at multiples of the measured rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MET, MISSED = "met", "**missed**"


def at_least(value: float, goal: float) -> str:
    return MET if value >= goal else MISSED


def at_most(value: float, goal: float) -> str:
    return MET if value <= goal else MISSED


def per_round_ratios(path_runs: list[float], floor_runs: list[float]) -> list[float]:
    """A path's throughput over the floor's, round by round (both measured in each round)."""
    return [a / b for a, b in zip(path_runs, floor_runs, strict=False)]


def target_verdict(per_round: list[float], median: float, goal: float) -> tuple[str, str]:
    """(noise, verdict) of a ratio target: met when every round meets it, missed when none does,
    otherwise judged by the median and said to be within the noise."""
    if len(per_round) < 2:
        return "1 round: spread not measured", MET if median >= goal else f"{MISSED} (1 round)"
    lo, hi = min(per_round), max(per_round)
    noise = f"{len(per_round)} rounds, {lo:.1%} - {hi:.1%}"
    if lo >= goal:
        return noise, MET
    if hi < goal:
        return noise, MISSED
    return noise, f"{'met' if median >= goal else 'missed'} by the median, within the noise"


def speedups(base: float, base_floor: float, off: float, off_floor: float) -> tuple[float, float]:
    """(raw, vs floor) speedup of a tuning: its path's req/s with it on over with it off, and the
    same on ratios to the floor measured on each server (which cancels drift between servers)."""
    return base / off, (base / base_floor) / (off / off_floor)


PROCESSES = ("server", "postgres", "redis", "pgbouncer")  # cpu_us_per_request's processes; the rest splits one


def processes_us(part: dict[str, float]) -> float:
    """A request's CPU in all the processes measured (server_user and server_system are the server's
    own split, already in its total)."""
    return sum(part.get(name, 0.0) for name in PROCESSES)


def binding(r: dict[str, Any], cores: int) -> str:
    """What bounds a path's throughput, from its measured CPU: the server's one core when it is
    nearly full, else the cores everything shares (server, PostgreSQL, Redis, wrk)."""
    part = r["cpu_us_per_request"]
    if r["server_cpu_pct"] >= 90:
        return f"the server's core: {r['server_cpu_pct']:.0f}% busy at {part['server']:,.0f} µs a request"
    whole = processes_us(part)
    return (f"{'both' if cores == 2 else f'all {cores}'} cores: server {part['server']:,.0f} + PostgreSQL "
            f"{part['postgres']:,.0f} + Redis {part['redis']:,.0f} µs a request (+ wrk), at most "
            f"{cores * 1e6 / whole:,.0f} req/s")


# The goals of issue 19 against each peer, as ours / peer req/s on the same path and run: the
# original's "at least 2x" against the Python peers, and against Node.js 3x on a cached search
# and at least even (server µs per request no more than Node's) on every other path. Issue 33's:
# at least even with Granian (a Rust server calling the same code) on every path, and 2x BlackSheep.
PEER_GOALS = {"fastapi": {}, "gevent": {}, "node": {"hit": 3.0}, "granian": {}, "blacksheep": {}}
PEER_DEFAULT_GOAL = {"fastapi": 2.0, "gevent": 2.0, "node": 1.0, "granian": 1.0, "blacksheep": 2.0}


def peer_goal(peer: str, path: str) -> float:
    return PEER_GOALS.get(peer, {}).get(path, PEER_DEFAULT_GOAL.get(peer, 2.0))


def claim(ratio: float, goal: float) -> str:
    """Does ours / peer meet its goal? Said in words, for the Peers section."""
    return f"holds ({ratio:.2f}x, goal {goal:g}x)" if ratio >= goal else f"**not yet** ({ratio:.2f}x, goal {goal:g}x)"


def relative_change(first: float, last: float, allowed: float) -> tuple[float, bool]:
    """A rate's change from first to last, and whether it stays within ±allowed."""
    change = last / first - 1
    return change, abs(change) <= allowed


@dataclass(frozen=True)
class Projection:
    """What k times the measured rates would need, by plain multiplication."""

    posts: float
    searches: float
    api_cores: float
    postgres_cores: float
    wal_bytes_per_s: float | None
    table_bytes_per_day: float | None
    invalidations_per_s: float


def project(k: int, post: dict[str, Any], hit: dict[str, Any], miss: dict[str, Any],
            wal_per_post: float | None, bytes_per_tweet: float | None, miss_share: float = 0.01) -> Projection:
    """k times one worker's posts and cached searches, miss_share of the searches missing the cache;
    every post's invalidation reaches every worker, one worker per API core."""
    posts, searches = post["rps"] * k, hit["rps"] * k
    api = (posts * post["cpu_us_per_request"]["server"] + searches * hit["cpu_us_per_request"]["server"]) / 1e6
    pg = (posts * post["cpu_us_per_request"]["postgres"]
          + searches * miss_share * miss["cpu_us_per_request"]["postgres"]) / 1e6
    return Projection(posts, searches, api, pg, None if wal_per_post is None else posts * wal_per_post,
                      None if bytes_per_tweet is None else posts * bytes_per_tweet * 86400,
                      posts * max(1.0, api))
