"""Performance over commits: past commits of this repository measured side by side with one
reference commit on this machine, one record per commit and path appended to
bench/results/history.jsonl (committed), drawn by bench/report/history.py.

Each commit runs as the CI check runs a candidate (bench/check.py): its files unpacked with `git
archive`, its own virtualenv and database made from its own requirements and sql/ (bench/sides.py),
its servers pinned beside the reference's and loaded at the same time, round after round. A record
holds the commit's throughput as a ratio to the reference's in the same rounds (comparable across
machines and runs: whatever the machine does falls on both), and each side's server CPU µs per
request (absolute: shown only with the machine it was measured on).

Commits are taken in an order that spreads them over the range (its ends, then the middle, then
the quarters...), so a run stopped by its time budget still draws the whole line, coarser. Commits
already recorded against the same reference are skipped (a later run goes on where one stopped);
one that cannot run (no `python -m service run` yet, a broken tree, a server that does not start)
is recorded as such, with the reason.

    python -m bench.history --revs c2542a7..HEAD --budget-minutes 30   (make bench-history)
    python -m bench.history --worktree       this working tree, as make bench does at its end
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import check
from bench.facts import commit, machine
from bench.harness import bench_settings, log, prepare_stack
from bench.paths import RESULTS
from ops import stack
from service.settings import ROOT

HISTORY = RESULTS / "history.jsonl"
ROUNDS, SECONDS = 3, 2


def commits(revs: str) -> list[str]:
    """Full hashes, oldest first: a range (A..B, or ..B for every ancestor) or a list of revisions."""
    if ".." in revs:
        start, _, end = revs.partition("..")
        listed = check.git("rev-list", "--reverse", "--first-parent", end or "HEAD").split()
        if start:  # A..B includes A here: the line starts at the commit named
            first = check.resolve(start)
            listed = listed[listed.index(first):] if first in listed else listed
        return listed
    return [check.resolve(rev) for rev in revs.replace(",", " ").split()]


def spread(n: int) -> list[int]:
    """0..n-1 ordered ends first, then midpoints level by level."""
    order = [0, n - 1][:n] if n > 1 else list(range(n))
    spans = [(0, n - 1)]
    while spans:
        nxt = []
        for lo, hi in spans:
            if hi - lo > 1:
                mid = (lo + hi) // 2
                order.append(mid)
                nxt += [(lo, mid), (mid, hi)]
        spans = nxt
    return order


def read_history(path: Path = HISTORY) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def described(sha: str) -> dict[str, str]:
    date, _, subject = check.git("log", "-1", "--format=%cI%x00%s", sha).partition("\0")
    return {"commit": sha, "date": date, "subject": subject[:200]}


def cannot_run_reason(tree: Path) -> str | None:
    main = tree / "service" / "__main__.py"
    if not main.exists() or not re.search(r"\brun\b", main.read_text()):
        return "no `python -m service run` in this commit"
    return None


def measure_commit(sha: str | None, reference: check.Side, rounds: int, seconds: int,
                   admin_dsn: str, redis_server: str) -> dict[str, Any]:
    """One commit (None: the working tree) against the reference: per path the ratio and µs."""
    tree = ROOT if sha is None else check.unpack(sha)
    reason = cannot_run_reason(tree)
    if reason:
        return {"status": "cannot run", "reason": reason}
    candidate = check.Side("candidate", tree, f"{redis_server}/2")
    try:
        candidate.prepare(admin_dsn)
        for side in (reference, candidate):  # both sides from the first cold tag, each commit alike
            side.cold_cursor = 0
        server_us: dict[str, dict[str, list[float]]] = {}
        rps = check.measure([reference, candidate], rounds, seconds, check.WARMUP, check.PATHS, server_us)
    except (check.CheckError, RuntimeError) as exc:
        return {"status": "cannot run", "reason": reason_of(str(exc))}
    paths = {}
    for path, v in check.judge(rps, check.THRESHOLDS).items():
        paths[path] = {"ratio": round(v["ratio"], 4), "ratios": [round(r, 4) for r in v["ratios"]],
                       "rps": round(v["candidate_rps"], 1), "reference_rps": round(v["baseline_rps"], 1),
                       "server_us": round(statistics.median(server_us[path]["candidate"]), 1),
                       "reference_server_us": round(statistics.median(server_us[path]["baseline"]), 1)}
    return {"status": "measured", "paths": paths}


def reason_of(error: str) -> str:
    """What failed first (a traceback's last line), then the error's tail for the details."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    last = next((line.strip() for line in reversed(lines) if re.match(r"^\s*[\w.]+(Error|Exception)\b", line)),
                lines[0].strip() if lines else "unknown")
    return f"{last[:300]}\n{error[-600:]}"


def records(about: dict[str, str], reference: str, outcome: dict[str, Any], source: str,
            rounds: int, seconds: int) -> list[dict[str, Any]]:
    """One record per gated path (a commit that cannot run: one per path, with the reason)."""
    common = {**about, "reference": reference, "source": source, "machine": machine(),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "settings": {**check.COMMON, "rounds": rounds, "seconds_per_round": seconds,
                           "wrk_connections_per_side": check.CONNECTIONS}}
    if outcome["status"] != "measured":
        return [{**common, "path": path, "status": outcome["status"], "reason": outcome["reason"]}
                for path in check.PATHS]
    return [{**common, "path": path, "status": "measured", **values} for path, values in outcome["paths"].items()]


def append(rows: list[dict[str, Any]], path: Path = HISTORY) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revs", default="..HEAD", help="A..B (A included), ..B (every ancestor), or a list")
    parser.add_argument("--worktree", action="store_true", help="measure this working tree instead of commits")
    parser.add_argument("--reference", help="the commit every other is measured beside (default: the CI "
                                            "check's baseline, bench/baseline.json)")
    parser.add_argument("--budget-minutes", type=float, default=30)
    parser.add_argument("--again", action="store_true", help="measure commits already recorded, too")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seconds", type=int, default=SECONDS)
    return parser.parse_args()


def main() -> int:
    args = arguments()
    reference_sha = check.resolve(args.reference or check.named_baseline())
    prepare_stack()
    admin_dsn, redis_url = stack.urls(bench_settings())
    redis_server = redis_url.rsplit("/", 1)[0]
    reference = check.Side("baseline", check.unpack(reference_sha), f"{redis_server}/1")
    try:
        reference.prepare(admin_dsn)
    except check.CheckError as exc:
        print(f"the reference {reference_sha[:12]} cannot run: {exc}", file=sys.stderr)
        return 2
    if args.worktree:
        head = check.git("rev-parse", "HEAD")
        about = {**described(head), "worktree": commit()}
        outcome = measure_commit(None, reference, args.rounds, args.seconds, admin_dsn, redis_server)
        append(records(about, reference_sha, outcome, "make bench", args.rounds, args.seconds))
        log(f"history: the working tree against {reference_sha[:12]}: {summary(outcome)}")
        return 0 if outcome["status"] == "measured" else 1
    return run_range(args, reference, reference_sha, admin_dsn, redis_server)


def run_range(args: argparse.Namespace, reference: check.Side, reference_sha: str, admin_dsn: str,
              redis_server: str) -> int:
    listed = commits(args.revs)
    done = {r["commit"] for r in read_history() if r["reference"] == reference_sha and not r.get("worktree")}
    todo = [listed[i] for i in spread(len(listed)) if args.again or listed[i] not in done]
    deadline = time.monotonic() + 60 * args.budget_minutes
    log(f"history: {len(todo)} of {len(listed)} commits to measure against {reference_sha[:12]} "
        f"(budget {args.budget_minutes:g} minutes; {len(listed) - len(todo)} recorded before)")
    measured = 0
    for sha in todo:
        if time.monotonic() > deadline:
            log(f"history: the budget is spent: {len(todo) - measured} commits left for a later run "
                "(make bench-history goes on where this one stopped)")
            break
        about = described(sha)
        outcome = measure_commit(sha, reference, args.rounds, args.seconds, admin_dsn, redis_server)
        append(records(about, reference_sha, outcome, "bench-history", args.rounds, args.seconds))
        measured += 1
        log(f"history: {sha[:10]} {about['subject'][:60]!r}: {summary(outcome)}")
    from bench.report.history import publish

    publish(read_history(), reference_sha)
    return 0


def summary(outcome: dict[str, Any]) -> str:
    if outcome["status"] != "measured":
        return f"{outcome['status']}: {outcome['reason'].splitlines()[0] if outcome['reason'] else ''}"
    return ", ".join(f"{p} {v['ratio']:.2f}x ({v['server_us']:.0f} µs)" for p, v in outcome["paths"].items())


if __name__ == "__main__":
    sys.exit(main())
