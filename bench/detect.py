"""Does `make bench-check` catch a real slowdown on each gated path and stay quiet on a clean tree?

The check is run as CI runs it, with the baseline set to this tree's own commit (HEAD), so a clean
run compares identical code. First the deliberate slowdown is calibrated: SLOWDOWN_<PATH>_US
(busy work in that path only) is adjusted until the path runs 25% slower, i.e. at 0.80x the
baseline's throughput in a longer side-by-side measurement. Then, N times each, alternating: the
check on the clean tree, and the check with every path slowed (each slowdown lies on its own path
only, so each path's verdict in that run is the verdict for its own slowdown). Writes
bench/results/detection.json (committed) and its section of RESULTS.md.

    python -m bench.detect [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.check import PATHS, THRESHOLDS, git
from bench.harness import log, prepare_stack, write_json
from bench.paths import RESULTS
from bench.report.results import load_json
from bench.report.runs import publish_detection
from service.settings import ROOT

OUT = RESULTS / "detection.json"
LAST = RESULTS / "check-last.json"
TARGET = 1 / 1.25  # 25% more time per request: 0.80x the throughput


def check(extra: list[str], rounds: int | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.check", "--baseline", "HEAD", "--output", str(LAST.relative_to(ROOT)),
           *extra, *(["--rounds", str(rounds)] if rounds else [])]
    started = time.time()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"the check could not measure:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(LAST.read_text())
    data["wall_seconds"] = time.time() - started
    data["exit"] = result.returncode
    return data


def slow_env(slowdown: dict[str, int]) -> list[str]:
    return [arg for path, us in slowdown.items() for arg in ("--env", f"SLOWDOWN_{path.upper()}_US={us}")]


def calibrate(rounds: int) -> tuple[dict[str, int], dict[str, float]]:
    """Per path, the busy microseconds per request that make it run at about 0.80x."""
    clean = check([], rounds)["paths"]
    # A first guess: a quarter of the server's time per request (the two servers share one CPU).
    slowdown = {p: max(10, round(0.25 * 0.5e6 / clean[p]["candidate_rps"])) for p in PATHS}
    effect: dict[str, float] = {}
    for attempt in range(4):
        measured = check(slow_env(slowdown), rounds)["paths"]
        effect = {p: measured[p]["ratio"] for p in PATHS}
        log(f"  calibration {attempt + 1}: " + ", ".join(f"{p} {slowdown[p]} us -> {effect[p]:.3f}x" for p in PATHS))
        off = [p for p in PATHS if abs(effect[p] - TARGET) > 0.025]
        if not off:
            break
        for p in off:  # scale the busy time by how far the extra time per request is from 25%
            extra = max(1 / min(effect[p], 0.99) - 1, 0.02)
            slowdown[p] = round(slowdown[p] * min(4.0, max(0.25, 0.25 / extra)))
    return slowdown, effect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--calibration-rounds", type=int, default=16)
    args = parser.parse_args()
    if git("status", "--porcelain", "--untracked-files=no"):
        sys.exit("bench.detect compares HEAD with the working tree: commit or stash your changes first")
    started = time.time()
    prepare_stack()
    log("calibrating a 25% slowdown per path")
    slowdown, effect = calibrate(args.calibration_rounds)
    runs: dict[str, list[dict[str, Any]]] = {"clean": [], "slow": []}
    for i in range(args.runs):  # alternate, so drift over time affects both kinds alike
        for kind, extra in (("clean", []), ("slow", slow_env(slowdown))):
            data = check(extra)
            runs[kind].append(data)
            flagged = [p for p, v in data["paths"].items() if v["failed"]]
            log(f"  run {i + 1}/{args.runs} {kind:<5}: " + " ".join(f"{p} {v['ratio']:.3f}" for p, v in
                data["paths"].items()) + f"  -> {'FAILED ' + ','.join(flagged) if flagged else 'passed'}"
                f" ({data['wall_seconds']:.0f}s)")
    per_path = {}
    for p in PATHS:
        clean = [r["paths"][p]["ratio"] for r in runs["clean"]]
        slow = [r["paths"][p]["ratio"] for r in runs["slow"]]
        per_path[p] = {
            "slowdown_us": slowdown[p], "calibrated_ratio": effect[p], "allowed": 1 - THRESHOLDS[p],
            "caught": sum(r["paths"][p]["failed"] for r in runs["slow"]),
            "false_alarms": sum(r["paths"][p]["failed"] for r in runs["clean"]),
            "clean_ratios": clean, "slow_ratios": slow,
            # spread of a clean run's median: how far the threshold sits in units of the noise
            "clean_sd": statistics.stdev(clean) if len(clean) > 1 else 0.0,
        }
    detection = {
        "runs": args.runs, "paths": per_path,
        "clean_runs_failed": sum(r["exit"] != 0 for r in runs["clean"]),
        "slow_runs_failed": sum(r["exit"] != 0 for r in runs["slow"]),
        "check_seconds": statistics.median(r["wall_seconds"] for rs in runs.values() for r in rs),
        "settings": runs["clean"][0]["settings"], "commit": git("rev-parse", "HEAD"),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "elapsed_s": time.time() - started,
    }
    write_json(OUT, detection)
    publish_detection(detection, load_json(RESULTS / "injected.json"))
    log("per path: " + ", ".join(f"{p} caught {v['caught']}/{args.runs}, false alarms {v['false_alarms']}/{args.runs}"
                                 for p, v in per_path.items()))


if __name__ == "__main__":
    main()
