"""make locust / make loadtest: bring up the stack and the service, seed once, run Locust.

    python -m loadtests.run --ui                                   web UI on 127.0.0.1:8089
    python -m loadtests.run --scenario mixed --users 50 --duration 60s   headless, with gates
    python -m loadtests.run --stop                                  stop a Locust UI left running
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench.scrape import between, try_scrape
from bench.seed import SeedSpec
from ops import balancer, stack
from ops.background import LOCUST_UI_PORT as UI_PORT
from ops.background import start
from ops.process import terminate
from service.db.migrate import migrate
from service.settings import ROOT, load_settings

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
SHAPES = ROOT / "loadtests" / "shapes.py"
SCENARIOS = {"reader": "ReaderUser", "cold": "ColdReaderUser", "poster": "PosterUser",
             "registrar": "RegistrarUser", "mixed": "MixedUser"}
# What the web UI's form opens with, per scenario: (users, spawn rate per second). Enough users to
# load two workers on this machine's class; registrations hash with argon2, a few already saturate.
UI_LOAD = {"reader": (100, 20), "cold": (50, 10), "poster": (50, 10), "registrar": (8, 2), "mixed": (50, 10),
           "all": (50, 10)}


def bring_up(seed_data: bool) -> str:
    settings = load_settings()
    if stack.embedded(settings):
        stack.up(settings)
    dsn = stack.urls(settings)[0]
    asyncio.run(migrate(dsn))
    if seed_data:
        from bench.seed import seed

        spec = SeedSpec()
        if asyncio.run(seed(dsn, spec, quiet=True)):
            print(f"seeded the database ({spec.users:,} users, {spec.tweets:,} tweets)", flush=True)
    return start(settings)


def ui_processes() -> list[psutil.Process]:
    """Locust processes listening on the UI port (ours: their command line names locust)."""
    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == UI_PORT and conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                if "locust" in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                pass
    return found


def stop_ui() -> bool:
    """Stop a Locust web UI (and its worker processes); True if one was running."""
    procs = ui_processes()
    workers = [child for proc in procs for child in proc.children(recursive=True)]
    for proc in [*procs, *workers]:  # the master stops its workers; any left are stopped after it
        terminate(proc.pid, grace=10)
    return bool(procs)


def summary(csv_path: Path) -> str:
    rows = list(csv.DictReader(csv_path.open()))
    lines = [f"{'endpoint':<34} {'requests':>9} {'failures':>9} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"]
    for r in rows:
        lines.append(f"{(r['Type'] + ' ' + r['Name'])[:34]:<34} {r['Request Count']:>9} {r['Failure Count']:>9} "
                     f"{float(r['Requests/s']):>8.1f} {r['50%']:>7} {r['95%']:>7} {r['99%']:>7}")
    return "\n".join(lines)


def metrics_line(counted: dict[str, Any]) -> str:
    """The target's own count of the run (its /metrics, scraped before and after)."""
    if "cache" not in counted:
        return "the target's /metrics did not answer: no cache hit ratio or pool waits for this run"
    ratio, wait = counted["hit_ratio"], counted["pool_wait_us_mean"]
    return (f"/metrics of {len(counted['scraped'])} instance(s) during the run: searches {counted['cache']} (cache hit ratio "
            f"{'-' if ratio is None else f'{ratio:.1%}'}), {counted['pool_acquires']:,} PostgreSQL connections "
            f"lent, mean wait {'-' if wait is None else f'{wait:,.0f} µs'}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ui", action="store_true", help="open the web UI instead of a headless run")
    parser.add_argument("--stop", action="store_true", help=f"stop a Locust UI on port {UI_PORT}")
    parser.add_argument("--scenario", default="mixed", choices=[*sorted(SCENARIOS), "all"],
                        help="the scenario to run; with --ui, the one offered ticked (all: every one)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--processes", type=int, default=1, help="Locust worker processes (-1: one per CPU)")
    parser.add_argument("--max-fail-ratio", type=float, default=0.0)
    parser.add_argument("--max-p95-ms", type=float, default=0.0)
    parser.add_argument("--host", default="", help="target (default: start the local service)")
    parser.add_argument("--metrics", default="",
                        help="comma-separated URLs whose /metrics are summed for the run's cache hit ratio and "
                             "pool waits (default: every instance of `make cluster` when it is the target, "
                             "else the target)")
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--out", default="", help="results folder (default results/loadtest/<scenario>-<time>)")
    return parser.parse_args()


def open_ui(args: argparse.Namespace, host: str) -> None:
    """Replace this process with Locust's web UI, the scenario offered ticked."""
    offered = "all" if args.scenario == "all" else SCENARIOS[args.scenario]
    os.environ["LOCUST_SCENARIOS"] = offered
    print(f"Locust web UI on http://127.0.0.1:{UI_PORT} (target {host}), offering {offered} "
          f"({UI_LOAD[args.scenario][0]} users, {UI_LOAD[args.scenario][1]:g}/s to start) and the "
          "load shapes (Default, or StepLoadShape: +10 users every 15 s up to 100; STEP_USERS, "
          "STEP_SECONDS, MAX_USERS change it); make stop or Ctrl-C stops it", flush=True)
    os.execv(sys.executable, ui_command(args.scenario, host))


def ui_command(scenario: str, host: str, port: int = UI_PORT) -> list[str]:
    """Locust's web UI with the scenario's user count and spawn rate as the form's starting values."""
    users, rate = UI_LOAD[scenario]
    return [sys.executable, "-m", "locust", "-f", f"{LOCUSTFILE},{SHAPES}", "--host", host,
            "--users", str(users), "--spawn-rate", f"{rate:g}",
            "--web-host", "127.0.0.1", "--web-port", str(port), "--class-picker"]


def headless(args: argparse.Namespace, host: str) -> int:
    """A headless run with its gates; its reports and the target's own counts in the results folder."""
    classes = list(SCENARIOS.values()) if args.scenario == "all" else [SCENARIOS[args.scenario]]
    out = Path(args.out) if args.out else \
        ROOT / "results" / "loadtest" / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host,
           *(["--processes", str(args.processes)] if args.processes != 1 else []),
           "--headless", "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.duration,
           "--csv", str(out / "stats"), "--html", str(out / "report.html"), "--json-file", str(out / "stats"),
           "--only-summary", "--max-fail-ratio", str(args.max_fail_ratio), "--max-p95-ms", str(args.max_p95_ms),
           *classes]
    print(f"running {', '.join(classes)}: {args.users} users for {args.duration} against {host}", flush=True)
    scraped = args.metrics.split(",") if args.metrics else balancer.instance_urls(load_settings(), host)
    before = try_scrape(scraped)
    code = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    counted = {**between(before, try_scrape(scraped)), "scraped": scraped}
    (out / "metrics.json").write_text(json.dumps(counted, indent=2))
    stats = out / "stats_stats.csv"
    if stats.exists():
        print("\n" + summary(stats))
    print("\n" + metrics_line(counted))
    print(f"\nreports: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} "
          "(stats_*.csv, report.html, stats.json, metrics.json)")
    if code:
        print(f"load test FAILED its gates (exit {code})", file=sys.stderr)
    return code


def main() -> int:
    args = arguments()
    if args.stop:
        print(f"Locust UI {'stopped' if stop_ui() else 'not running'}")
        return 0
    host = args.host or bring_up(seed_data=not args.no_seed)
    if args.ui:
        open_ui(args, host)
    return headless(args, host)


if __name__ == "__main__":
    sys.exit(main())
