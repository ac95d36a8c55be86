"""Does `make bench-check` catch a real slowdown and stay quiet on a clean tree?

Runs the check N times on the tree as it is, and N times with SLOWDOWN_SEARCH_US set so the
search path costs 25% more server time (calibrated here from the hit path's measured CPU time
per request). Writes bench/results/detection.json, which bench/report.py publishes.

    python -m bench.detect [--runs 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.harness import Server, cpus, log, prepare_stack, token, write_json, wrk
from service.settings import ROOT

OUT = ROOT / "bench" / "results" / "detection.json"


def search_cost_us() -> float:
    """Server CPU microseconds per hit-path request, measured now."""
    server_cpu, load_cpu = cpus()
    with Server({}, server_cpu) as server:
        bearer = token(server.url)
        wrk(server, "hit", 3, bearer, load_cpu)
        runs = [wrk(server, "hit", 3, bearer, load_cpu) for _ in range(3)]
    per_request = sorted(1e6 * (r["server_cpu_pct"] / 100) / r["rps"] for r in runs)
    return per_request[1]


def check(extra: list[str]) -> tuple[bool, list[str], float]:
    out = ROOT / "bench" / "results" / "check-last.json"
    started = time.time()
    cmd = [sys.executable, "-m", "bench.check", "--output", str(out.relative_to(ROOT)), *extra]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    import json

    failed = [f.split(" fell")[0] for f in json.loads(out.read_text())["failures"]]
    return result.returncode != 0, failed, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    prepare_stack()
    extra_us = round(0.25 * search_cost_us())
    log(f"slowdown: +{extra_us} us of CPU per search (25% of the hit path's measured cost)")
    results: dict[str, list[tuple[bool, list[str], float]]] = {"clean": [], "slow": []}
    for i in range(args.runs):  # alternate, so drift over time affects both sides alike
        for kind, extra in (("clean", []), ("slow", ["--env", f"SLOWDOWN_SEARCH_US={extra_us}"])):
            failed, metrics, seconds = check(extra)
            results[kind].append((failed, metrics, seconds))
            log(f"  run {i + 1}/{args.runs} {kind:<5}: {'FAILED ' + ', '.join(metrics) if failed else 'passed'}"
                f" ({seconds:.0f}s)")
    seconds = [s for runs in results.values() for _, _, s in runs]
    write_json(OUT, {
        "runs": args.runs,
        "slowdown": f"SLOWDOWN_SEARCH_US={extra_us}: +25% server CPU time on every search",
        "clean_failures": sum(f for f, _, _ in results["clean"]),
        "slow_failures": sum(f for f, _, _ in results["slow"]),
        "clean_failed_metrics": sorted({m for _, ms, _ in results["clean"] for m in ms}),
        "slow_failed_metrics": sorted({m for _, ms, _ in results["slow"] for m in ms}),
        "check_seconds": sorted(seconds)[len(seconds) // 2],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    })
    log(f"clean tree failed {sum(f for f, _, _ in results['clean'])}/{args.runs}, "
        f"slowed tree failed {sum(f for f, _, _ in results['slow'])}/{args.runs}")


if __name__ == "__main__":
    main()
