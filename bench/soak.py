"""Soak: a long Locust Mixed run against 2 workers, sampling what could grow without bound.

Every few seconds: each worker's RSS and open file descriptors, its connections to PostgreSQL
(its pool's size) and Redis, and Redis's used memory. After a warm-up, growth is the change
from the end of the warm-up to the end of the run (and the least-squares slope, per 10
minutes). Writes bench/results/soak.json (committed), bench/plots/soak.png and RESULTS.md's
"Soak" section.

    python -m bench.soak [--minutes 10] [--users 30]      (make soak SOAK_MINUTES=10)
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from typing import Any

import psutil
import redis

from bench.facts import commit
from bench.harness import Server, bench_settings, log, prepare_stack, write_json
from bench.paths import PLOTS, RESULTS, RESULTS_MD
from bench.report.markdown import publish_section
from bench.report.runs import SOAK_TITLE, soak_section
from ops import stack
from service.settings import ROOT, Settings

OUT = RESULTS / "soak.json"
PLOT = PLOTS / "soak.png"
SAMPLE_SECONDS = 5


def worker_samples(server: Server, pg_port: int, redis_port: int) -> dict[int, dict[str, float]]:
    """Per worker process (the children that serve): RSS MB, fds, PostgreSQL and Redis sockets.
    Workers are told from Sanic's helper processes by their connections to Redis or PostgreSQL
    (every worker holds the invalidation feed's)."""
    out = {}
    for proc in server.processes()[1:]:
        try:
            conns = proc.net_connections("tcp")
            if not any(c.raddr and c.raddr.port in (pg_port, redis_port) for c in conns):
                continue
            out[proc.pid] = {
                "rss_mb": proc.memory_info().rss / 2**20,
                "fds": proc.num_fds(),
                "pg_conns": sum(1 for c in conns if c.raddr and c.raddr.port == pg_port),
                "redis_conns": sum(1 for c in conns if c.raddr and c.raddr.port == redis_port),
            }
        except psutil.Error:
            continue
    return out


def bounds(settings: Settings) -> dict[str, float]:
    """What the service bounds, as the soak's workers run it: each worker's RSS may grow after the
    warm-up by what its in-process page cache may still fill (LOCAL_CACHE_BYTES), its PostgreSQL
    connections are its pool's and the notices' session, and Redis is capped by maxmemory."""
    listener = int(settings.db.database_notices and settings.cache.cache_enabled)
    maxmemory = settings.stack_redis_maxmemory.lower()
    units = {"kb": 2**-10, "mb": 1.0, "gb": 2**10}
    unit = next((u for u in units if maxmemory.endswith(u)), "")
    redis_mb = float(maxmemory.removesuffix(unit)) * units[unit] if unit else float(maxmemory) / 2**20
    return {"rss_growth_mb": settings.cache.local_cache_bytes / 2**20,
            "pg_conns": float(settings.pool_max + listener), "redis_mb": redis_mb}


def slope_per_10min(ts: list[float], ys: list[float]) -> float:
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return 600 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else 0.0


def run(minutes: float, users: int, warmup: float) -> dict[str, Any]:
    measured = commit()  # before anything else: the code the servers start with
    prepare_stack()
    settings = bench_settings()
    pg_port, redis_port = settings.stack_pg_port, settings.stack_redis_port
    client = redis.Redis.from_url(stack.urls(settings)[1])
    out_dir = RESULTS / "soak-locust"
    out_dir.mkdir(parents=True, exist_ok=True)
    samples: list[dict[str, Any]] = []
    with Server({"WORKERS": "2"}, "0") as server:
        cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
               "--host", server.url, "--headless", "-u", str(users), "-r", "5", "-t", f"{int(minutes * 60)}s",
               "--csv", str(out_dir / "stats"), "--only-summary", "MixedUser"]
        if len(psutil.Process().cpu_affinity() or []) > 1:
            cmd = ["taskset", "-c", "1", *cmd]
        log(f"soak: {users} Mixed users for {minutes:g} min against 2 workers; sampling every {SAMPLE_SECONDS} s")
        started = time.monotonic()
        locust = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while locust.poll() is None:
            t = time.monotonic() - started
            info = client.info("memory")
            samples.append({"t": t, "workers": worker_samples(server, pg_port, redis_port),
                            "redis_mb": info["used_memory"] / 2**20})
            if len(samples) % 12 == 0:
                w = samples[-1]["workers"]
                log(f"  {t / 60:4.1f} min: RSS " + ", ".join(f"{v['rss_mb']:.1f}" for v in w.values())
                    + f" MB; Redis {samples[-1]['redis_mb']:.1f} MB")
            time.sleep(SAMPLE_SECONDS)
        stderr = locust.stderr.read() if locust.stderr else ""
    client.close()
    stats = {r["Name"]: r for r in csv.DictReader((out_dir / "stats_stats.csv").open())}
    total = stats["Aggregated"]
    late = [s for s in samples if s["t"] >= warmup]
    pids = sorted({pid for s in late for pid in s["workers"]})
    per_worker = {}
    for pid in pids:
        points = [(s["t"], s["workers"][pid]) for s in late if pid in s["workers"]]
        ts = [t for t, _ in points]
        per_worker[str(pid)] = {
            key: {"start": points[0][1][key], "end": points[-1][1][key], "max": max(p[key] for _, p in points),
                  "slope_per_10min": slope_per_10min(ts, [p[key] for _, p in points])}
            for key in ("rss_mb", "fds", "pg_conns", "redis_conns")}
    redis_points = [(s["t"], s["redis_mb"]) for s in late]
    return {
        "minutes": minutes, "users": users, "warmup_s": warmup, "sample_s": SAMPLE_SECONDS, "workers": 2,
        "bounds": bounds(settings.replaced(workers=2)),
        "requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]), "p95_ms": float(total["95%"]), "locust_exit": locust.returncode,
        "locust_stderr_tail": stderr[-500:], "per_worker": per_worker,
        "redis_mb": {"start": redis_points[0][1], "end": redis_points[-1][1],
                     "slope_per_10min": slope_per_10min([t for t, _ in redis_points], [m for _, m in redis_points])},
        "series": [{"t": s["t"], "redis_mb": s["redis_mb"],
                    "rss_mb": {str(pid): w["rss_mb"] for pid, w in s["workers"].items()}} for s in samples],
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": measured,
    }


def plot(result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    pids = sorted({pid for s in result["series"] for pid in s["rss_mb"]})
    for i, pid in enumerate(pids):
        pts = [(s["t"] / 60, s["rss_mb"][pid]) for s in result["series"] if pid in s["rss_mb"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"worker {i + 1} RSS")
    ax.plot([s["t"] / 60 for s in result["series"]], [s["redis_mb"] for s in result["series"]], label="Redis used memory")
    ax.axvline(result["warmup_s"] / 60, color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MB")
    ax.set_title(f"Soak: {result['users']} Mixed users, 2 workers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before growth is counted")
    args = parser.parse_args()
    result = run(args.minutes, args.users, min(args.warmup, args.minutes * 60 / 3))
    write_json(OUT, result)
    plot(result)
    publish_section(RESULTS_MD, SOAK_TITLE, soak_section(result))
    log(f"soak: {result['failures']} failures; RSS growth per worker after warm-up: "
        + ", ".join(f"{w['rss_mb']['end'] - w['rss_mb']['start']:+.1f} MB" for w in result["per_worker"].values()))
    if result["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
