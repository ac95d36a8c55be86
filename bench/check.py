"""CI performance regression check: ratio metrics measured in one run, compared with
bench/baseline.json; exits 1 naming every metric that fell by more than its threshold.

Ratios, not absolute speeds, because this machine is shared and noisy: each HTTP endpoint is
divided by the floor endpoint measured on the same server, interleaved, and each
microbenchmark by a reference computation timed alongside it. Medians over several rounds.

    python -m bench.check                 compare with the baseline (make bench-check)
    python -m bench.check --write-baseline  measure and store a new baseline (make bench-baseline)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.harness import Server, cpus, log, prepare_stack, token, write_json, wrk
from service.settings import ROOT
from service.tags import normalise, tweet_tags

BASELINE = ROOT / "bench" / "baseline.json"
ROUNDS, SECONDS = 5, 2
# Fractions a metric may fall before the check fails: set between the run-to-run noise of a
# clean tree and the drop a 25% slowdown causes (about 20% of the ratio; bench/detect.py
# measures both). miss/floor is the noisiest ratio here (its rounds spread about ±15%).
THRESHOLDS = {"hit/floor": 0.12, "post/floor": 0.15, "miss/floor": 0.20}
MICRO_THRESHOLD = 0.40  # in-process timings swing about ±30% between runs here


def http_metrics(extra_env: dict[str, str]) -> dict[str, float]:
    server_cpu, load_cpu = cpus()
    out: dict[str, float] = {}
    # The cache-off server first: right after a burst of posts, misses run ~40% slower for some
    # seconds (the database settling), which would make miss/floor depend on what ran before.
    for env, endpoints in (({"CACHE_ENABLED": "false"}, ["miss"]), ({}, ["hit", "post"])):
        with Server({**env, **extra_env}, server_cpu) as server:
            bearer = token(server.url)
            for endpoint in ["floor", *endpoints]:
                wrk(server, endpoint, 3, bearer, load_cpu)  # also opens the pool's connections
            ratios: dict[str, list[float]] = {e: [] for e in endpoints}
            for _ in range(ROUNDS):
                floor = wrk(server, "floor", SECONDS, bearer, load_cpu)["rps"]
                for endpoint in endpoints:
                    ratios[endpoint].append(wrk(server, endpoint, SECONDS, bearer, load_cpu)["rps"] / floor)
            for endpoint, values in ratios.items():
                out[f"{endpoint}/floor"] = statistics.median(values)
    return out


def reference() -> int:
    return sum(i * i for i in range(2000))


def micro_metrics() -> dict[str, float]:
    """Each operation's best time divided by the reference's best time, both over 15 samples
    taken alternately: noise only ever adds time, so the minimum is the stable estimate."""
    page = {"data": [{"id": i, "msg": "x" * 140, "user_id": 1, "username": "bench_1",
                      "created_at": "2026-11-28T00:06:37.712722Z", "tags": ["python", "sanic"]}
                     for i in range(10)], "code": "success", "pagination": {"total": 1, "page": 1, "page_size": 10}}
    raw_normalise = normalise.__wrapped__
    ops: dict[str, Callable[[], object]] = {
        "normalise tag / reference": lambda: [raw_normalise(t) for t in ("#Python", "Straße", "uvloop_2")],
        "serialize 10-tweet page / reference": lambda: orjson.dumps(page),
        "tags of a tweet / reference": lambda: tweet_tags(["Python"], "fast #Python on #uvloop"),
    }

    def timed(fn: Callable[[], object], n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n

    out = {}
    for name, fn in ops.items():
        op_times, ref_times = [], []
        for _ in range(15):
            op_times.append(timed(fn, 1000))
            ref_times.append(timed(reference, 100))
        out[name] = min(op_times) / min(ref_times)
    return out


def measure(extra_env: dict[str, str] | None = None) -> dict[str, float]:
    prepare_stack()
    return {**http_metrics(extra_env or {}), **micro_metrics()}


def compare(current: dict[str, float], baseline: dict[str, Any]) -> list[str]:
    """Messages for every metric worse than its baseline by more than its threshold."""
    failures = []
    for name, base in baseline["metrics"].items():
        value = current.get(name)
        if value is None:
            failures.append(f"{name}: not measured")
            continue
        threshold = baseline["thresholds"][name]
        # HTTP ratios: higher is better. Micro ratios (time / reference): lower is better.
        change = value / base - 1 if "/floor" in name else base / value - 1
        status = "FAIL" if change < -threshold else "ok"
        log(f"  {status:<4} {name:<40} {value:8.3f}  baseline {base:8.3f}  change {change:+.1%} "
            f"(allowed -{threshold:.0%})")
        if status == "FAIL":
            failures.append(f"{name} fell {-change:.0%} (allowed {threshold:.0%}): {value:.3f} vs {base:.3f}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-baseline", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="extra server setting NAME=VALUE")
    parser.add_argument("--output", help="write the measured metrics and verdict here (JSON)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    started = time.time()
    log("performance check: measuring ratio metrics")
    current = measure(extra)
    if args.write_baseline:
        baseline = {"metrics": current, "thresholds": {k: THRESHOLDS.get(k, MICRO_THRESHOLD) for k in current},
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "note": "written by `make bench-baseline`; do not edit by hand"}
        write_json(BASELINE, baseline)
        log(f"baseline written to {BASELINE.relative_to(ROOT)}")
        return 0
    failures = compare(current, json.loads(BASELINE.read_text()))
    elapsed = time.time() - started
    if args.output:
        write_json(ROOT / args.output, {"metrics": current, "failures": failures, "seconds": elapsed})
    if failures:
        print("performance check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    log(f"performance check passed in {elapsed:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
