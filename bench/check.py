"""CI performance regression check: this working tree (the candidate) against a baseline commit,
both measured in the same job, on the same stack and data, interleaved round by round.

Speeds, and even ratios to a floor, move with the machine, so nothing measured elsewhere is
trusted. The baseline commit named in bench/baseline.json is unpacked (git archive) and run
beside the candidate: both on the same PostgreSQL database and Redis server (each side its own
Redis database and key prefix), both servers pinned to the same CPU, wrk on the other. Every
round loads each gated path on both sides at the same time, for the same seconds, so that what
the shared machine does meanwhile falls on both alike (measured one after the other, the same
code's throughput moves by +-10% between two-second windows here; side by side, +-3%). A path is
judged by the median over rounds of candidate / baseline throughput: it fails when that median
falls below 1 - its threshold.

Gated paths, one worker per server:
  hit     the hottest tag's first page, cached
  miss    a different cold tag on every request, so every one is a cache miss: Redis read,
          version read, window query and fill script (each side's Redis database is flushed
          before each of its miss measurements)
  bypass  the hottest tag's first page with the cache switched off: PostgreSQL alone
  post    a new tweet with 1-3 tags: the commit, then the cache update and invalidation

    python -m bench.check                       compare (make bench-check)
    python -m bench.check --set-baseline REV    name a new baseline commit (make bench-baseline)
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import sides as side_env
from bench.facts import commit
from bench.harness import Server, bench_settings, cpus, log, start_stack, token, write_json, wrk
from bench.seed import BENCH_SPEC
from ops import stack
from ops.system import port_open
from service.settings import ROOT

BASELINE_FILE = ROOT / "bench" / "baseline.json"
TREES = ROOT / ".data" / "bench" / "trees"
PATHS = ("hit", "miss", "bypass", "post")
SCRIPT = {"hit": "hit", "miss": "cold", "bypass": "bypass", "post": "post"}
# How far below the baseline (as a fraction) a path's median ratio may fall before the check
# fails. A deliberate 25% slowdown of a path lowers its ratio to about 0.80; a clean tree's
# medians stay within a few percent of 1.00 (bench/detect.py measures both: RESULTS.md).
THRESHOLDS = {"hit": 0.10, "miss": 0.10, "bypass": 0.10, "post": 0.10}
ROUNDS, SECONDS, WARMUP = 8, 2, 2  # wrk takes whole seconds
CONNECTIONS = 32  # per side: 64 in all, as in the load runs
# The same settings on both sides: four servers share one PostgreSQL (max_connections 100).
COMMON = {"WORKERS": "1", "DB_POOL_MAX": "20", "ACCESS_LOG": "false", "ENV": "development"}
PORTS = {("baseline", True): 2092, ("candidate", True): 2093,
         ("baseline", False): 2094, ("candidate", False): 2095}


class CheckError(RuntimeError):
    """The check could not measure (as opposed to: measured a slowdown)."""


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise CheckError(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def resolve(rev: str) -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except CheckError:
        raise CheckError(f"baseline {rev!r} is not a commit in this repository's history (a shallow "
                         "clone? `git fetch --unshallow`, or name another: make bench-baseline "
                         "REV=<commit> REASON=...)") from None


def named_baseline() -> str:
    try:
        return str(json.loads(BASELINE_FILE.read_text())["commit"])
    except (OSError, ValueError, KeyError):
        raise CheckError(f"{BASELINE_FILE.relative_to(ROOT)} names no baseline commit: "
                         "make bench-baseline REV=<commit> REASON=...") from None


def unpack(commit: str) -> Path:
    """The commit's files in a directory of their own (kept for later runs)."""
    tree = TREES / commit
    if (tree / ".complete").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (tree / ".complete").touch()
    return tree


@dataclass
class Side:
    name: str  # "baseline" or "candidate"
    tree: Path
    redis_url: str  # the bench Redis, a database of this side's own
    env: dict[str, str] = field(default_factory=dict)  # extra settings for this side only
    cold_cursor: int = 0  # next cold tag for the miss path
    python: str = sys.executable  # its own environment's interpreter (bench/sides.py)
    database_url: str = ""  # its own database, made by its own sql/ and seeder

    def prepare(self, admin_dsn: str) -> None:
        try:
            self.python = side_env.python_for(self.tree)
            self.database_url = side_env.database_for(self.tree, self.name, admin_dsn, self.python)
        except side_env.SideError as exc:
            raise CheckError(str(exc)) from None


def start_servers(sides: list[Side], server_cpu: str, exits: ExitStack) -> dict[tuple[str, bool], Server]:
    settings = bench_settings().with_secret()
    servers = {}
    for side in sides:
        for cached in (True, False):
            port = PORTS[(side.name, cached)]
            if port_open(port):  # a server left from elsewhere would be measured instead
                raise CheckError(f"port {port} was busy before the {side.name}'s server started: "
                                 "stop what listens there (make stop) and run the check again")
            env = {**COMMON, "DATABASE_URL": side.database_url, "REDIS_URL": side.redis_url,
                   "CACHE_PREFIX": f"ck{side.name[0]}", "TOKEN_SECRET": settings.token_secret,
                   "CACHE_ENABLED": str(cached).lower(), "PORT": str(port), **side.env}
            # The service alone on the URLs given, with the side's own Python: every tree has
            # `python -m service run`, a baseline from before ops/ existed included.
            server = Server(env, server_cpu, command=[side.python, "-m", "service", "run"], cwd=side.tree)
            servers[(side.name, cached)] = exits.enter_context(server)
    return servers


def measure(sides: list[Side], rounds: int, seconds: int, warmup: int, paths: tuple[str, ...] = PATHS,
            server_us: dict[str, dict[str, list[float]]] | None = None) -> dict[str, dict[str, list[float]]]:
    """Requests per second per path and side, one value per round. Both sides are loaded at the
    same time (two wrk processes on the load CPU, servers sharing the server CPU), so whatever
    the machine does meanwhile falls on both alike. `server_us`, when given, receives each round's
    server CPU µs per request the same way (each server's own processes)."""
    server_cpu, load_cpu = cpus()
    rps: dict[str, dict[str, list[float]]] = {p: {s.name: [] for s in sides} for p in paths}
    with ExitStack() as exits:
        servers = start_servers(sides, server_cpu, exits)
        bearer = {s.name: token(servers[(s.name, True)].url) for s in sides}

        def run(side: Side, path: str, secs: int, out: dict[str, dict[str, Any]]) -> None:
            server = servers[(side.name, path != "bypass")]
            script_env = None
            if path == "miss":
                script_env = {"START": str(side.cold_cursor), "COUNT": str(BENCH_SPEC.cold_tags)}
            out[side.name] = wrk(server, SCRIPT[path], secs, bearer[side.name], load_cpu,
                                 connections=CONNECTIONS, script_env=script_env)

        def pair(path: str, secs: int, counted: bool = True) -> dict[str, float]:
            if path == "miss":  # every request a tag not yet cached, on both sides
                for side in sides:
                    client = redis.Redis.from_url(side.redis_url)
                    client.flushdb()
                    client.close()
            out: dict[str, dict[str, Any]] = {}
            threads = [threading.Thread(target=run, args=(side, path, secs, out)) for side in sides]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for side in sides:
                result = out.get(side.name)
                if result is None or result["errors"] or not result["requests"]:
                    server = servers[(side.name, path != "bypass")]
                    raise CheckError(f"{side.name} {path}: {result and result['errors']} errors in "
                                     f"{result and result['requests']} requests (server log: {server.log_path})")
            if path == "miss":  # both sides go on to the same tags, none used before
                cursor = max(side.cold_cursor + out[side.name]["requests"] + CONNECTIONS for side in sides)
                for side in sides:
                    side.cold_cursor = cursor
            if server_us is not None and counted:
                for name, r in out.items():
                    server_us.setdefault(path, {}).setdefault(name, []).append(r["cpu_us_per_request"]["server"])
            return {name: float(r["rps"]) for name, r in out.items()}

        for path in paths:
            pair(path, warmup, counted=False)
        for _ in range(rounds):
            for path in paths:
                for name, value in pair(path, seconds).items():
                    rps[path][name].append(value)
    return rps


def judge(rps: dict[str, dict[str, list[float]]], thresholds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per path: the per-round candidate / baseline ratios, their median and the verdict."""
    out = {}
    for path, sides in rps.items():
        ratios = [c / b for b, c in zip(sides["baseline"], sides["candidate"], strict=True)]
        median = statistics.median(ratios)
        allowed = 1 - thresholds[path]
        out[path] = {"ratio": median, "ratios": ratios, "allowed": allowed, "failed": median < allowed,
                     "baseline_rps": statistics.median(sides["baseline"]),
                     "candidate_rps": statistics.median(sides["candidate"])}
    return out


def failure_message(path: str, v: dict[str, Any], baseline: str) -> str:
    return (f"{path}: the candidate ran at {v['ratio']:.2f}x the baseline's throughput (median of "
            f"{len(v['ratios'])} interleaved rounds, each between {min(v['ratios']):.2f} and "
            f"{max(v['ratios']):.2f}; allowed down to {v['allowed']:.2f}x) against {baseline[:12]}")


def set_baseline(rev: str, reason: str) -> int:
    commit = resolve(rev)
    write_json(BASELINE_FILE, {"commit": commit, "reason": reason,
                               "set_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "note": "the commit bench/check.py measures the working tree against; "
                                       "move it with make bench-baseline REV=... REASON=..."})
    log(f"baseline is now {commit[:12]} ({git('log', '-1', '--format=%s', commit)})")
    return 0


# What decides the check's verdict: a candidate changing these changes the check itself.
CHECK_FILES = ("bench/check.py", "bench/sides.py", "bench/baseline.json", "bench/harness.py", "bench/wrk",
               ".ci/run", "Makefile")


def self_changes(baseline: str, baseline_tree: Path, candidate_tree: Path) -> list[str]:
    """Notices when the candidate changes the check (its files, thresholds or baseline) since the
    baseline commit: a loosened threshold passes anything, so it must be seen in the output."""
    notes = []
    if candidate_tree == ROOT:
        changed = git("diff", "--name-only", baseline, "--", *CHECK_FILES).split()
        if changed:
            notes.append("the candidate changes the check's own files since the baseline: " + ", ".join(changed))
    theirs = thresholds_in(baseline_tree / "bench" / "check.py")
    if theirs is not None and theirs != THRESHOLDS:
        notes.append(f"thresholds differ from the baseline's: {theirs} there, {THRESHOLDS} here")
    named = candidate_tree / "bench" / "baseline.json"
    if named.exists() and json.loads(named.read_text()).get("commit") not in (None, baseline):
        notes.append(f"compared with {baseline[:12]}, not the baseline bench/baseline.json names")
    return notes


def thresholds_in(path: Path) -> dict[str, float] | None:
    """A tree's THRESHOLDS literal, read without running its code."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "THRESHOLDS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="compare with this commit instead of the one bench/baseline.json names")
    parser.add_argument("--set-baseline", metavar="REV", help="name REV as the baseline commit and exit")
    parser.add_argument("--reason", default="", help="why the baseline moves (with --set-baseline)")
    parser.add_argument("--env", action="append", default=[], help="extra candidate setting NAME=VALUE")
    parser.add_argument("--candidate-tree", type=Path, default=ROOT,
                        help="measure this directory as the candidate (its own environment and database) "
                             "instead of the working tree")
    parser.add_argument("--confirm", action="store_true",
                        help="when a path fails, measure again and judge both runs' rounds pooled; "
                             "when the check cannot measure, try once more")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--output", help="write the measurements and verdicts here (JSON)")
    return parser.parse_args()


def pooled(first: dict[str, dict[str, list[float]]],
           second: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    return {path: {side: first[path][side] + second[path][side] for side in first[path]} for path in first}


def run_check(args: argparse.Namespace) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """(baseline commit, candidate, verdicts); CheckError when it cannot measure."""
    baseline = resolve(args.baseline or named_baseline())
    candidate = commit() if args.candidate_tree == ROOT else str(args.candidate_tree)
    log(f"performance check: candidate {candidate} against baseline {baseline[:12]} "
        f"({git('log', '-1', '--format=%s', baseline)})")
    # First: a first start creates the Redis password that the URL carries. Only the servers:
    # each side loads a database of its own, and nothing reads the shared one.
    start_stack()
    admin_dsn, redis_url = stack.urls(bench_settings())
    redis_server = redis_url.rsplit("/", 1)[0]
    sides = [Side("baseline", unpack(baseline), f"{redis_server}/1"),
             Side("candidate", args.candidate_tree.resolve(), f"{redis_server}/2",
                  dict(item.split("=", 1) for item in args.env))]
    for note in self_changes(baseline, sides[0].tree, sides[1].tree):
        log(f"NOTICE: {note}")
    for side in sides:
        side.prepare(admin_dsn)
    start = random.randrange(BENCH_SPEC.cold_tags)  # each run starts somewhere else
    for side in sides:
        side.cold_cursor = start
    paths = tuple(p for p in args.paths.split(",") if p)
    rps = measure(sides, args.rounds, args.seconds, WARMUP, paths)
    verdicts = judge(rps, THRESHOLDS)
    if args.confirm and any(v["failed"] for v in verdicts.values()):
        log("a path measured slower: measuring once more, then judging both runs' rounds together")
        verdicts = judge(pooled(rps, measure(sides, args.rounds, args.seconds, WARMUP, paths)), THRESHOLDS)
    return baseline, candidate, verdicts


def main() -> int:
    args = arguments()
    if args.set_baseline:
        return set_baseline(args.set_baseline, args.reason)
    started = time.time()
    for attempt in (1, 2) if args.confirm else (1,):
        try:
            baseline, candidate, verdicts = run_check(args)
            break
        except CheckError as exc:
            print(f"performance check could not measure: {exc}", file=sys.stderr)
            if attempt == 2 or not args.confirm:
                return 2
            log("trying once more (could not measure)")
    failures = []
    for path, v in verdicts.items():
        status = "FAIL" if v["failed"] else "ok"
        log(f"  {status:<4} {path:<7} candidate/baseline {v['ratio']:.3f} (rounds "
            f"{' '.join(f'{r:.2f}' for r in v['ratios'])}; allowed >= {v['allowed']:.2f})  "
            f"{v['candidate_rps']:,.0f} vs {v['baseline_rps']:,.0f} req/s")
        if v["failed"]:
            failures.append(failure_message(path, v, baseline))
    elapsed = time.time() - started
    if args.output:
        write_json(ROOT / args.output, {
            "baseline": baseline, "candidate": candidate, "paths": verdicts, "failures": failures,
            "seconds": elapsed, "settings": {**COMMON, "rounds": args.rounds, "seconds_per_run": args.seconds,
                                             "candidate_env": args.env, "wrk_connections_per_side": CONNECTIONS,
                                             "confirm": args.confirm}})
    if failures:
        print("performance check FAILED (a path slower than the baseline measured in this same run):\n  "
              + "\n  ".join(failures)
              + "\n  If the slowdown is intended, move the baseline on purpose: make bench-baseline "
              "REV=HEAD REASON='...' (README: Performance check).", file=sys.stderr)
        return 1
    log(f"performance check passed in {elapsed:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
