"""Write RESULTS.md and its plots from the measurements in bench/results/ (never by hand).

    python -m bench.report [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.seed import BENCH_SPEC
from service.settings import ROOT

RESULTS = ROOT / "bench" / "results"
TARGETS = [("search HIT / floor", "hit", 0.90), ("search BYPASS (cache off) / floor", "bypass", 0.30),
           ("search MISS / floor", "miss", 0.25), ("post / floor", "post", 0.25)]
# service / PostgreSQL's ceiling on the same statements (issue 9); deep pages are reported only.
CEILING_TARGETS = {"bypass": 0.90, "miss": 0.75, "post": 0.75}
PEER_HIT_TARGET = 5.0


def f0(x: float) -> str:
    return f"{x:,.0f}"


def f2(x: float) -> str:
    return f"{x:.2f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def endpoint_rows(runs: dict[str, dict[str, Any]], floor: float) -> list[list[str]]:
    rows = []
    for name, r in runs.items():
        rows.append([name, f0(r["rps"]), f2(r["rps"] / floor), f2(r["p50_ms"]), f2(r["p90_ms"]),
                     f2(r["p99_ms"]), f2(r["p999_ms"]), str(int(r["errors"])), f0(r["server_cpu_pct"]) + "%",
                     *scraped(r), " / ".join(str(x) for x in r["runs"])])
    return rows


def scraped(r: dict[str, Any]) -> list[str]:
    """The cache hit ratio and mean pool wait the service's /metrics counted during the runs."""
    m = r.get("metrics", {})
    ratio, wait = m.get("hit_ratio"), m.get("pool_wait_us_mean")
    return ["-" if ratio is None else f"{ratio:.1%}", "-" if wait is None else f"{wait:,.0f}"]


ENDPOINT_HEAD = ["endpoint", "req/s (median)", "/ floor", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
                 "errors", "server CPU", "cache hits (/metrics)", "pool wait µs (/metrics)", "req/s of each round"]


def plots(http: dict[str, Any], folder: Path) -> list[str]:
    """Draw the plots into folder; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    default, cold = http["endpoints"]["default"], http["endpoints"]["cache off"]
    names = ["floor", "hit", "miss", "bypass", "post", "deep_offset", "deep_keyset", "login"]
    values = [(cold if name == "bypass" else default)[name]["rps"] for name in names]
    fig, ax = plt.subplots(figsize=(8.5, 3.5))
    ax.bar(names, values, color="#4c72b0")
    ax.set_ylabel("requests/s (1 worker)")
    ax.set_title("Throughput by endpoint")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "throughput.png", dpi=110)
    made.append("throughput.png")
    plt.close(fig)

    if http["ablation"]:
        labels = ["all tunings on", *http["ablation"].keys()]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.21
        for j, endpoint in enumerate(["hit", "miss", "bypass", "post"]):
            base = (cold if endpoint == "bypass" else default)[endpoint]["rps"]
            ys = [base] + [row.get(endpoint, {}).get("rps", 0) for row in http["ablation"].values()]
            ax.barh([i + j * width for i in range(len(labels))], ys, height=width, label=endpoint)
        ax.set_yticks([i + 1.5 * width for i in range(len(labels))], labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("requests/s (1 worker)")
        ax.set_title("Each tuning switched off in turn")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "ablation.png", dpi=110)
        made.append("ablation.png")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    pcts = ["p50_ms", "p90_ms", "p99_ms", "p999_ms"]
    for endpoint, r in http["constant_rate"].items():
        ax.plot(["p50", "p90", "p99", "p99.9"], [r[p] for p in pcts], marker="o",
                label=f"{endpoint} @ {r['target_rps']:,.0f} req/s")
    ax.set_yscale("log")
    ax.set_ylabel("latency ms (log)")
    ax.set_title("Latency at 50% of each endpoint's maximum (constant rate)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=110)
    made.append("latency.png")
    plt.close(fig)

    if http["workers"]:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        workers = sorted(http["workers"], key=int)
        for j, endpoint in enumerate(["floor", "hit", "bypass", "post"]):
            ax.bar([int(w) + (j - 1.5) * 0.2 for w in workers],
                   [http["workers"][w][endpoint]["rps"] for w in workers], width=0.2, label=endpoint)
        ax.set_xticks([int(w) for w in workers], [f"{w} worker(s)" for w in workers])
        ax.set_ylabel("requests/s")
        ax.set_title("Worker scaling (2 CPUs in all)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "workers.png", dpi=110)
        made.append("workers.png")
        plt.close(fig)
    return made


def profile_section(profiles: dict[str, Any]) -> list[str]:
    parts = list(dict.fromkeys(name for p in profiles.values() for name in p["parts"]))
    out = ["## Where the server's CPU goes (py-spy)", "",
           "py-spy sampled the one server worker at 250 Hz while wrk loaded one path (bench/profile.py; "
           "a fresh server per path, pinned as above, bypass with the cache off). Shares of the samples "
           "in which the worker was running, by the part of the code the innermost Python frame belongs "
           "to (time in C code counts towards the Python frame that called it).", "",
           table(["path", "req/s while sampled", "samples", *parts],
                 [[path, f0(p["rps_while_sampled"]), str(p["samples"]),
                   *[f"{p['parts'].get(name, 0):.0%}" for name in parts]] for path, p in profiles.items()]),
           "", "The innermost frames with the most samples, per path:", ""]
    for path, p in profiles.items():
        out += [f"- {path}: " + "; ".join(f"`{frame}` {share:.0%}" for frame, share in p["top_own"][:6])]
    out += ["", "Collapsed stacks for flame graph tools: bench/results/profiles/ (after a run)."]
    return out


def micro_section(micro: dict[str, Any]) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for b in micro["benchmarks"]:
        groups.setdefault(b["group"], []).append(b)
    parts = []
    for group, items in groups.items():
        per_op = [(b["name"].replace("test_", ""), b["stats"]["median"] / b["extra_info"].get("ops_per_round", 1))
                  for b in items]
        best = min(t for _, t in per_op)
        rows = [[name, f"{t * 1e6:,.1f}", f2(t / best)] for name, t in sorted(per_op, key=lambda x: x[1])]
        parts.append(f"**{group}**\n\n" + table(["benchmark", "median µs per operation", "× fastest"], rows))
    return "\n\n".join(parts)


DETECTION_TITLE = "## CI performance regression check"


def detection_section(detection: dict[str, Any] | None) -> list[str]:
    """RESULTS.md's section on the CI check, from bench/results/detection.json (bench/detect.py)."""
    out = [DETECTION_TITLE, ""]
    if not detection or "paths" not in detection:
        return [*out, "Not measured yet: run `make bench-detect`."]
    settings = detection["settings"]
    runs = detection["runs"]
    out += [
        f"Measured by `make bench-detect` on {detection['measured_at']} at commit "
        f"{detection['commit'][:12]}, on this machine. `make bench-check` compares the working tree "
        "with a baseline commit run beside it in the same job (here the baseline is the same commit, "
        "so a clean run compares identical code): both servers pinned to one CPU, both loaded at the "
        f"same time by wrk on the other ({settings['wrk_connections_per_side']} connections each), "
        f"{settings['rounds']} rounds of {settings['seconds_per_run']} s per path; a path fails when "
        "the median of its per-round candidate / baseline throughput ratios falls below the allowed "
        f"ratio. A check takes {detection['check_seconds']:.0f} s (median, servers and all).",
        "",
        "The slowdown is busy work on one path only (SLOWDOWN_<PATH>_US), calibrated beforehand in "
        "longer side-by-side runs until that path ran at about 0.80x the baseline's throughput, i.e. "
        "each request took 25% longer. Each slowed run carries every path's slowdown; each lies on "
        "its own path only, so a path's verdict in that run answers for its own slowdown.",
        "",
        table(["path", "slowdown (µs per request)", "its measured effect", "allowed ratio",
               "slowed runs caught", "clean runs failing", "clean medians (min - max, sd)",
               "slowed medians (min - max)", "lowest clean median above the allowed ratio, in sd"],
              [[p, str(v["slowdown_us"]), f"{v['calibrated_ratio']:.2f}x", f"{v['allowed']:.2f}",
                f"{v['caught']} / {runs}", f"{v['false_alarms']} / {runs}",
                f"{min(v['clean_ratios']):.3f} - {max(v['clean_ratios']):.3f}, {v['clean_sd']:.3f}",
                f"{min(v['slow_ratios']):.3f} - {max(v['slow_ratios']):.3f}",
                f"{(min(v['clean_ratios']) - v['allowed']) / v['clean_sd']:.1f}" if v["clean_sd"] else "-"]
               for p, v in detection["paths"].items()]),
        "",
        f"Whole check: {detection['clean_runs_failed']} of {runs} clean runs failed, "
        f"{detection['slow_runs_failed']} of {runs} slowed runs failed. CI measures a failed check "
        "once more and fails only when both runs fail.",
    ]
    return out


SOAK_TITLE = "## Soak"
CHAOS_TITLE = "## Faults under load (chaos)"
FAULT_WORDS = {"steady": "none (warm-up)", "redis-kill": "Redis killed (-9), restarted",
               "redis-freeze": "Redis frozen (SIGSTOP/SIGCONT)", "redis-cut": "Redis cut off (proxy)",
               "pg-kill": "PostgreSQL postmaster killed (-9), restarted",
               "worker-kill": "one service worker killed (-9)", "sigterm": "service SIGTERM, started again"}


def chaos_section(result: dict[str, Any]) -> list[str]:
    """RESULTS.md's chaos section, from bench/results/chaos.json (bench/chaos.py)."""
    s = result["settings"]
    lines = [
        CHAOS_TITLE, "",
        f"`make chaos` on {s['measured_at']} (commit {s['commit']}): {s['writers']} writers and "
        f"{s['readers']} readers against {s['workers']} workers, {s['tags']} shared tags; each fault "
        f"lasts {s['fault_s']:g} s, then {s['steady_s']:g} s of steady load. A write is *acknowledged* "
        "(201), *refused* (a 4xx, or no connection), *503* (the service said unavailable) or *no answer* "
        "(sent, connection lost before a response); whether each write that was not acknowledged "
        "landed anyway is looked up in PostgreSQL afterwards. "
        "A *stale read* started after a tweet of its tag was acknowledged and did not show it (or "
        "counted fewer tweets than were acknowledged). *Recovery*: from healing to the first "
        "acknowledged write and successful read that started after it.", "",
        "| fault (in order) | writes | acked | lost | 503 (landed) | no answer (landed) | refused (landed) | "
        "reads | stale reads | 500 | 503 | recovery s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["phases"]:
        recover = "" if r["recover_s"] is None else f"{r['recover_s']:.2f}"
        lines.append(f"| {FAULT_WORDS.get(r['phase'], r['phase'])} | {r['writes']} | {r['acked']} | "
                     f"{r['lost']} | {r['unavailable']} ({r['unavailable_landed']}) | "
                     f"{r['indeterminate']} ({r['indeterminate_landed']}) | "
                     f"{r['refused']} ({r['refused_landed']}) | {r['reads']} | {r['stale_reads']} | "
                     f"{r['status_500']} | {r['status_503']} | {recover} |")
    f = result["final"]
    lines += [
        "", f"After healing: {f['acked']} acknowledged tweets, {f['lost']} missing from PostgreSQL, "
        f"{f['missing_from_search']} missing from a search of one of their tags; search and PostgreSQL "
        f"disagree on {f['search_differs_from_db']} tags' tweets and {f['total_differs_from_db']} tags' "
        f"totals. Tracebacks in the service's log (other than asyncpg's while PostgreSQL was down): "
        f"{s['server_tracebacks']} (and {s.get('sanic_shutdown_races', 0)} from Sanic stopping a worker: "
        "one still starting, or its loop stopped under Sanic's own cleanup; not counted against "
        "the run, and any request it cut shows as no answer above). Targets: nothing lost, no stale "
        "read, no 500, 503 (always with Retry-After) only while PostgreSQL is down (a request is "
        "counted in the phase it began in; a 503 there overlapped the next fault's PostgreSQL kill). "
        + ("**All met.**" if not result["problems"] else "**Missed:** " + "; ".join(result["problems"])),
        "", "Statuses per fault are in bench/results/chaos.json (transport errors by name). CI runs "
        "the same experiment with shorter periods (`make chaos CHAOS_SHORT=1`).", "",
    ]
    return lines


def soak_section(result: dict[str, Any]) -> list[str]:
    """RESULTS.md's soak section, from bench/results/soak.json (bench/soak.py)."""
    rows = []
    for i, (_, w) in enumerate(sorted(result["per_worker"].items())):
        rows.append([f"worker {i + 1}"] + [
            f"{w[k]['start']:.1f} -> {w[k]['end']:.1f} ({w[k]['slope_per_10min']:+.2f} per 10 min)" if k == "rss_mb"
            else f"{w[k]['start']:.0f} -> {w[k]['end']:.0f} (max {w[k]['max']:.0f})"
            for k in ("rss_mb", "fds", "pg_conns", "redis_conns")])
    r = result["redis_mb"]
    return [
        SOAK_TITLE, "",
        f"`make soak` on {result['measured_at']}: Locust MixedUser, {result['users']} users, "
        f"{result['minutes']:g} minutes against 2 workers (bench stack), sampled every {result['sample_s']} s; "
        f"growth is measured from the end of a {result['warmup_s']:.0f} s warm-up to the end of the run. "
        f"{result['requests']:,} requests at {result['rps']:.0f} req/s, {result['failures']} failures, "
        f"p95 {result['p95_ms']:.0f} ms.", "",
        "![soak](bench/plots/soak.png)", "",
        table(["", "RSS MB (after warm-up -> end)", "open fds", "PostgreSQL connections", "Redis connections"], rows),
        "",
        f"Redis used memory: {r['start']:.1f} -> {r['end']:.1f} MB ({r['slope_per_10min']:+.2f} MB per 10 min; "
        "it holds the cache of every tag searched, bounded by maxmemory with LRU eviction).",
    ]


INSTANCES_TITLE = "## Instances behind a load balancer"


def instances_section(result: dict[str, Any]) -> list[str]:
    """RESULTS.md's section from bench/results/instances.json (bench/instances.py)."""
    rows, paths, plan = result["rows"], result["paths"], result["plan"]
    out = [INSTANCES_TITLE, "",
           f"`make bench-instances` (bench/instances.py, commit {result['facts']['commit']}, "
           f"{result['versions']['haproxy']}; {result['versions']['pgbouncer']}): the bench data and paths "
           f"as above, {plan['rounds']} rounds of {plan['seconds']} s per path, medians. Every row shares both "
           "CPUs between the server side (instances, HAProxy, PgBouncer) and wrk, so on this 2-core machine "
           "more instances only divide the same cores: reported, not gated. Instances are single-process "
           "(WORKERS=1) and share the one PostgreSQL and Redis; HAProxy (`make cluster`, service/cluster.py) "
           "keeps connections alive on both sides and its CPU counts as the server's. PgBouncer runs in "
           f"transaction mode with {result['pgbouncer_pool_size']} server connections "
           "(DB_TRANSACTION_POOLER=true: no prepared statements, each use of a connection one transaction).",
           "", "req/s (p99 ms) and the server side's CPU µs per request:", ""]
    body = []
    for label in result.get("order", list(rows)):
        runs = rows[label]
        body.append([label, *[f"{f0(runs[p]['rps'])} ({f2(runs[p]['p99_ms'])})" for p in paths],
                     *[f0(runs[p]["cpu_us_per_request"]["server"]) for p in paths]])
    out.append(table(["configuration", *[f"{p} req/s (p99)" for p in paths], *[f"{p} µs" for p in paths]],
                     body))

    def ratio(a: str, b: str) -> list[str]:
        return [f"{rows[a][p]['rps'] / rows[b][p]['rps']:.2f}" for p in paths]

    comparisons = [
        ("the balancer's cost: 1 instance behind HAProxy / direct", "1 instance behind HAProxy",
         "1 instance, direct"),
        ("2 instances / 1 instance, both behind HAProxy", "2 instances behind HAProxy", "1 instance behind HAProxy"),
        ("2 instances behind HAProxy / 1 instance of 2 workers", "2 instances behind HAProxy",
         "1 instance of 2 workers, direct"),
        ("PgBouncer's cost: 1 instance through PgBouncer / direct", "1 instance, direct, through PgBouncer",
         "1 instance, direct"),
        ("PgBouncer's cost behind HAProxy: 2 instances through PgBouncer / without",
         "2 instances behind HAProxy, through PgBouncer", "2 instances behind HAProxy"),
    ]
    if "wal" in result:
        w = result["wal"]
        out += ["", f"PostgreSQL's WAL per acknowledged post (the post path under wrk on one instance for "
                    f"{w['seconds']} s, {w['posts']:,} posts, {w['rps']:,.0f} req/s): "
                    f"**{w['wal_bytes_per_post']:,.0f} bytes** ({w['wal_bytes'] / 1e6:,.1f} MB in all; fsync and "
                    "full-page writes on, so pages touched first after a checkpoint are written whole)."]
    out += ["", "Ratios of req/s, same run:", "",
            table(["comparison", *paths], [[name, *ratio(a, b)] for name, a, b in comparisons if a in rows and b in rows])]
    return out


SCALING_TITLE = "## Measured here"


def scaling_section(http: dict[str, Any], scale: dict[str, Any] | None,
                    instances: dict[str, Any] | None) -> list[str]:
    """docs/SCALING.md's figures, from the committed results (bench/results/*.json): the cost of
    each operation here, storage per tweet and per cached tag, WAL per post, and what 10x, 100x and
    1000x the measured single-worker rates would need, by plain multiplication."""
    d, bypass = http["endpoints"]["default"], http["endpoints"]["cache off"]["bypass"]
    runs = {"hit": d["hit"], "miss": d["miss"], "bypass": bypass, "post": d["post"]}
    out = [SCALING_TITLE, "",
           f"Written by bench/report.py from bench/results/*.json (make bench, commit {http['facts']['commit']}"
           + (f"; make bench-instances, commit {instances['facts']['commit']}" if instances else "")
           + (f"; make bench-scale, commit {scale['facts']['commit']}" if scale else "")
           + "); do not edit. One worker on one core of this 2-core machine, PostgreSQL and Redis on the other:",
           "", table(["operation", "req/s", "server µs", "PostgreSQL µs", "Redis µs"],
                     [[k, f0(r["rps"]), f0(r["cpu_us_per_request"]["server"]), f0(r["cpu_us_per_request"]["postgres"]),
                       f0(r["cpu_us_per_request"]["redis"])] for k, r in runs.items()])]
    facts = []
    wal = instances["wal"]["wal_bytes_per_post"] if instances and "wal" in instances else None
    if wal is not None:
        facts.append(["PostgreSQL WAL per post", f"{wal:,.0f} bytes"])
    per_tweet = None
    if scale and scale["sizes"]:
        big = scale["sizes"][-1]
        sizes = big["sizes"]
        stored = sum(sizes[t]["table_bytes"] + sizes[t]["index_bytes"] for t in ("tweets", "tweet_tags"))
        per_tweet = stored / sizes["tweet_rows"]
        facts += [["tables and indexes per tweet (tweets, tweet_tags)",
                   f"{per_tweet:,.0f} bytes (at {sizes['tweet_rows']:,} tweets)"],
                  ["Redis memory, a hot tag's entry (its newest 1,000 tweets)", f"{big['redis_bytes']['hot tag entry']:,} bytes"],
                  ["Redis memory, a 2-tweet tag's entry", f"{big['redis_bytes']['cold tag entry (mean)']:,} bytes"]]
    if instances:
        rows = instances["rows"]
        direct, lb = rows["1 instance, direct"], rows["1 instance behind HAProxy"]
        pooled = rows["1 instance, direct, through PgBouncer"]
        facts += [[f"HAProxy in front of one instance, {p}", f"{lb[p]['rps'] / direct[p]['rps']:.2f} of direct"]
                  for p in ("hit", "post")]
        facts += [[f"PgBouncer (transaction mode) in front of PostgreSQL, {p}",
                   f"{pooled[p]['rps'] / direct[p]['rps']:.2f} of direct"] for p in ("miss", "post")]
    out += ["", table(["quantity", "measured"], facts)]
    post, hit, miss = d["post"], d["hit"], d["miss"]
    out += ["", f"Load at multiples of what one worker serves here ({f0(post['rps'])} posts/s and "
            f"{f0(hit['rps'])} cached searches/s, together): the cores each tier would need at this machine's "
            "cost per request (1% of searches missing the cache), the WAL and new table data written, and the "
            "invalidation messages Redis delivers (one per post to every worker, one worker per API core):", ""]
    body = []
    for k in (1, 10, 100, 1000):
        posts, searches = post["rps"] * k, hit["rps"] * k
        api = (posts * post["cpu_us_per_request"]["server"] + searches * hit["cpu_us_per_request"]["server"]) / 1e6
        pg = (posts * post["cpu_us_per_request"]["postgres"]
              + searches * 0.01 * miss["cpu_us_per_request"]["postgres"]) / 1e6
        body.append([f"{k}x", f0(posts), f0(searches), f"{api:,.1f}", f"{pg:,.1f}",
                     "-" if wal is None else f"{posts * wal / 1e6:,.1f} MB/s",
                     "-" if per_tweet is None else f"{posts * per_tweet * 86400 / 1e9:,.0f} GB",
                     f0(posts * max(1.0, api))])
    out.append(table(["load", "posts/s", "searches/s", "API cores", "PostgreSQL cores", "WAL",
                      "new table data per day", "invalidation deliveries/s"], body))
    return out


def publish_scaling(http: dict[str, Any]) -> None:
    """Rewrite docs/SCALING.md's measured section from the results on disk."""
    scale_path, instances_path = RESULTS / "scale.json", RESULTS / "instances.json"
    scale = json.loads(scale_path.read_text()) if scale_path.exists() else None
    instances = json.loads(instances_path.read_text()) if instances_path.exists() else None
    path = ROOT / "docs" / "SCALING.md"
    section = "\n".join(scaling_section(http, scale, instances)) + "\n"
    path.write_text(replace_section(path.read_text() if path.exists() else "# Scaling\n", SCALING_TITLE, section))


SCALE_TITLE = "## Cost versus data size"
SCALE_PATHS = ("hit", "miss", "bypass", "post", "deep_offset", "deep_keyset")
SCALE_FLAT = {"hit": 0.10, "miss": 0.10, "post": 0.10, "deep_keyset": 0.20}  # largest vs smallest


def scale_plot(result: dict[str, Any], folder: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s["tweets"] for s in result["sizes"]]
    paths = [p for p in SCALE_PATHS if p in result["sizes"][0]["paths"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for path in paths:
        left.plot(sizes, [s["paths"][path]["rps"] for s in result["sizes"]], marker="o", label=path)
        right.plot(sizes, [s["paths"][path]["p99_ms"] for s in result["sizes"]], marker="o", label=path)
    for ax, label in ((left, "requests/s (1 worker)"), (right, "p99 latency ms (log)")):
        ax.set_xscale("log")
        ax.set_xlabel("tweets in the database (log)")
        ax.set_ylabel(label)
    right.set_yscale("log")
    left.legend(fontsize=7)
    fig.suptitle("Cost versus data size")
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / "scale.png", dpi=110)
    plt.close(fig)
    return "scale.png"


def scale_section(result: dict[str, Any], plot_dir: str) -> list[str]:
    """RESULTS.md's section from bench/results/scale.json (bench/scale.py, make bench-scale)."""
    runs = result["sizes"]
    paths = [p for p in SCALE_PATHS if p in runs[0]["paths"]]
    out = [SCALE_TITLE, "",
           f"`make bench-scale` (bench/scale.py, commit {result['facts']['commit']}): the bench data at "
           "growing numbers of tweets, each path measured as above (1 worker, pinned, "
           f"{result['plan']['rounds']} rounds of {result['plan']['seconds']} s, medians), within a "
           f"budget of {result['budget_s']:.0f} s. "
           + (f"Stopped {result['stopped']}." if result["stopped"] else "Every size ran."), "",
           f"![scale]({plot_dir}/scale.png)", "",
           table(["tweets", "hot tag's tweets", "seed s", *[f"{p} req/s (p99 ms)" for p in paths]],
                 [[f0(r["tweets"]), f0(r["sizes"]["hot_tag_tweets"]), f0(r["seed_s"]),
                   *[f"{f0(r['paths'][p]['rps'])} ({f2(r['paths'][p]['p99_ms'])})" for p in paths]]
                  for r in runs]), "",
           "Sizes on disk and in Redis:", "",
           table(["tweets", *[f"{t} table + indexes MB" for t in ("tweets", "tweet_tags", "tags")],
                  "Redis: hot tag entry KB", "Redis: cold tag entry bytes"],
                 [[f0(r["tweets"]),
                   *[f"{r['sizes'][t]['table_bytes'] / 2**20:,.0f} + {r['sizes'][t]['index_bytes'] / 2**20:,.0f}"
                     for t in ("tweets", "tweet_tags", "tags")],
                   f"{r['redis_bytes']['hot tag entry'] / 1024:,.0f}", f0(r["redis_bytes"]["cold tag entry (mean)"])]
                  for r in runs])]
    out += ["", "CPU per request by size (µs: server / PostgreSQL), which part grows with the data:", "",
            table(["tweets", *paths],
                  [[f0(r["tweets"]), *[f"{f0(r['paths'][p]['cpu_us_per_request']['server'])} / "
                                       f"{f0(r['paths'][p]['cpu_us_per_request']['postgres'])}" for p in paths]]
                   for r in runs])]
    if len(runs) > 1:
        rows = []
        for path, allowed in SCALE_FLAT.items():
            first, last = runs[0]["paths"][path]["rps"], runs[-1]["paths"][path]["rps"]
            change = last / first - 1
            rows.append([path, f"within ±{allowed:.0%}", f"{change:+.1%}",
                         "met" if abs(change) <= allowed else "**missed**"])
        out += ["", f"Targets, {f0(runs[0]['tweets'])} to {f0(runs[-1]['tweets'])} tweets (req/s, largest "
                "against smallest; deep offset pages are capped by the API at offset 9,900 instead):", "",
                table(["path", "goal", "change", ""], rows)]
    return out


def binding(r: dict[str, Any]) -> str:
    """What bounds a path's throughput, from its measured CPU: the server's one core when it is
    nearly full, else the two cores everything shares (server, PostgreSQL, Redis, wrk)."""
    part = r["cpu_us_per_request"]
    if r["server_cpu_pct"] >= 90:
        return f"the server's core: {r['server_cpu_pct']:.0f}% busy at {part['server']:,.0f} µs a request"
    whole = sum(part.values())
    return (f"both cores: server {part['server']:,.0f} + PostgreSQL {part['postgres']:,.0f} + Redis "
            f"{part['redis']:,.0f} µs a request (+ wrk), at most {2e6 / whole:,.0f} req/s")


def replace_section(text: str, title: str, section: str) -> str:
    """text with the section headed by title (up to the next '## ' heading) replaced, or appended."""
    start = text.find(title + "\n")
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(title))
    return text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")


def publish_detection(detection: dict[str, Any]) -> None:
    """Replace RESULTS.md's CI check section in place (the rest of the file is left as measured)."""
    path = ROOT / "RESULTS.md"
    text = path.read_text() if path.exists() else "# RESULTS\n"
    path.write_text(replace_section(text, DETECTION_TITLE, "\n".join(detection_section(detection)) + "\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    suffix = "-quick" if args.quick else ""
    http = json.loads((RESULTS / f"http{suffix}.json").read_text())
    micro = json.loads((RESULTS / f"micro{suffix}.json").read_text())
    detection_path = RESULTS / "detection.json"
    detection = json.loads(detection_path.read_text()) if detection_path.exists() else None
    # The full run's plots are committed with RESULTS.md; a quick run's stay in the ignored results.
    folder = RESULTS / "quick" if args.quick else ROOT / "bench" / "plots"
    plot_dir = folder.relative_to(ROOT).as_posix()
    images = plots(http, folder)
    default, cold = http["endpoints"]["default"], http["endpoints"]["cache off"]
    floor = default["floor"]["rps"]
    ratio = {"hit": default["hit"]["rps"] / floor, "bypass": cold["bypass"]["rps"] / cold["floor"]["rps"],
             "miss": default["miss"]["rps"] / floor, "post": default["post"]["rps"] / floor}
    out = [f"# RESULTS{' (quick run)' if args.quick else ''}",
           "",
           f"Generated by `make bench{'-quick' if args.quick else ''}` (bench/report.py) on "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {http['facts']['commit']}. "
           "Every figure below was measured by the code that wrote this file; do not edit it by hand.",
           "",
           "## Machine and versions", ""]
    out.append(table(["", ""], [[k, v] for k, v in {**http["facts"]["machine"],
                                                     **http["facts"]["versions"]}.items()]))
    plan = http["plan"]
    out += ["", "## How it was measured", "",
            "- The service runs as in production (`python -m service run`, Sanic worker manager) on the "
            f"embedded stack, seeded once with {BENCH_SPEC.users:,} users and {BENCH_SPEC.tweets:,} tweets whose "
            f"tags follow a Zipf law over {BENCH_SPEC.topics:,} topics, plus {BENCH_SPEC.cold_tags:,} cold tags "
            f"of {BENCH_SPEC.cold_tweets_per_tag} tweets each (bench/seed.py); rows added by earlier runs are "
            "removed before each run.",
            f"- Server pinned to CPU {http['facts']['server_cpu']}, load generator (wrk, 1 thread, "
            f"{http['facts']['connections']} connections) to CPU {http['facts']['load_cpu']}; PostgreSQL and "
            "Redis are not pinned. With 2 workers the server gets both CPUs and wrk shares them.",
            f"- Each configuration: a fresh server, {plan['warmup']} s warm-up per endpoint, then "
            f"{plan['rounds']} interleaved rounds of {plan['seconds']} s per endpoint (ablations and worker "
            f"counts: {plan['ablation_rounds']}); medians reported, every round listed.",
            "- hit: GET /api/v1/search-tweets?tag=topic1 (the hottest tag), cache on. miss: a different cold "
            "tag on every request, cache on and flushed before each round, so every request takes the full "
            "fill path (Redis miss, version read, window query, fill script; X-Cache: MISS). bypass: the hot "
            "tag with CACHE_ENABLED=false, so every request reads PostgreSQL (X-Cache: BYPASS). post: POST "
            "/api/v1/tweet with 1-3 Zipf tags. deep_offset: pages of the hot tag beyond its cached window of 1,000 "
            "(page_size 50-100, offsets 1,000-9,900), deep_keyset: before_id pages from 4,900 deep on; a "
            "different page on every request, so neither cache answers (bench/wrk/deep.lua). login: argon2id verification, 16 connections (within the "
            "hashing admission bound HASH_THREADS + HASH_QUEUE = 18; more are shed with 503). floor: GET /ping, a constant "
            "small JSON body from the same app, measured in the same server run.",
            f"- Total time of the HTTP runs: {http['elapsed_s']:.0f} s."]
    out += ["", "## Targets", ""]
    rows = []
    for name, k, t in TARGETS:
        runs = (cold if k == "bypass" else default)
        per_round = [a / b for a, b in zip(runs[k]["runs"], runs["floor"]["runs"], strict=False)]
        lo, hi = min(per_round), max(per_round)
        if len(per_round) < 2:
            noise, verdict = "1 round: spread not measured", "met" if ratio[k] >= t else "**missed** (1 round)"
        else:
            noise = f"{len(per_round)} rounds, {lo:.1%} - {hi:.1%}"
            verdict = ("met" if lo >= t else "**missed**" if hi < t else
                       f"{'met' if ratio[k] >= t else 'missed'} by the median, within the noise")
        rows.append([name, f"≥ {t:.0%}", f"{ratio[k]:.1%}", noise, verdict])
    hit_rate = http["constant_rate"]["hit"]
    rows.append(["p99 of search HIT at 50% of its max rate", "≤ 5 ms", f"{hit_rate['p99_ms']:.2f} ms",
                 f"one run of {hit_rate['seconds']} s", "met" if hit_rate["p99_ms"] <= 5 else "**missed**"])
    vis = http["visibility"]
    rows.append(["a new tweet visible on every worker (p99)", "≤ 50 ms", f"{vis['p99_ms']:.1f} ms",
                 f"{vis['samples']} posts", "met" if vis["p99_ms"] <= 50 else "**missed**"])
    peers = http["peer"]
    for name, runs in peers.items():
        over_peer = default["hit"]["rps"] / runs["default"]["hit"]["rps"]
        rows.append([f"search HIT / {name} peer's HIT", f"≥ {PEER_HIT_TARGET:.0f}x", f"{over_peer:.2f}x",
                     "medians of both", "met" if over_peer >= PEER_HIT_TARGET else "**missed**"])
    ceiling = http["postgres_ceiling"]
    service = {"bypass": cold["bypass"], "miss": default["miss"], "post": default["post"],
               "deep_offset": default["deep_offset"], "deep_keyset": default["deep_keyset"]}
    for path, goal in CEILING_TARGETS.items():
        share = service[path]["rps"] / ceiling[path]["rps"]
        rows.append([f"{path} / its statements' ceiling", f"≥ {goal:.0%}", f"{share:.1%}",
                     "service median, one ceiling run", "met" if share >= goal else "**missed**"])
    out.append(table(["target", "goal", "measured (median)", "noise: rounds, per-round range", ""], rows))
    out += ["", "## Database-bound paths against PostgreSQL's own ceiling", "",
            "Each path that asks PostgreSQL on every request, next to PostgreSQL alone running that path's "
            "statements through the service's own functions (service.db.tweets, asyncpg, prepared as the "
            f"service uses them) from {http['facts']['connections']} connections and from 8 (the better "
            "counts: at 64, PostgreSQL spends part of two cores switching between backends), pinned to the "
            "load CPU, "
            "with no HTTP, no Redis and no framework (bench/ceiling.py), in the same run. Durability is not "
            "traded for speed: " + ", ".join(f"{k.split(' ', 1)[1]}={v}" for k, v in
                                             http["facts"]["versions"].items() if k.startswith("postgresql ")) +
            ". The service's requests do more than the statement (HTTP, auth, JSON, and on miss and post "
            "the Redis round trips), all on the same two cores as PostgreSQL; the ceiling client's own CPU "
            "is listed so a ceiling limited by its client shows itself.", "",
            table(["path", "service req/s", "ceiling statements/s (connections)", "service / ceiling",
                   "service p99 ms", "ceiling p99 ms", "ceiling client CPU", "what bounds the service"],
                  [[path, f0(service[path]["rps"]), f"{f0(ceiling[path]['rps'])} ({ceiling[path]['connections']})",
                    f"{service[path]['rps'] / ceiling[path]['rps']:.0%}", f2(service[path]["p99_ms"]),
                    f2(ceiling[path]["p99_ms"]), f0(ceiling[path]["client_cpu_pct"]) + "%", binding(service[path])]
                   for path in service])]
    cpu_rows = []
    for label, runs in (("cache on", default), ("cache off", cold)):
        for name, r in runs.items():
            part = r.get("cpu_us_per_request")
            if part and name != "login":
                whole = sum(part.values())
                cpu_rows.append([name, label, f0(r["rps"]), f0(part["server"]), f0(part["postgres"]),
                                 f0(part["redis"]), f0(whole), f0(2e6 / whole) if whole else "-"])
    out += ["", "Where each request's CPU goes (CPU time of the server, PostgreSQL and Redis processes "
            "during the run, divided by the requests served; wrk's own CPU not counted). With two cores "
            "shared by all of them, 2 s divided by their sum bounds the throughput whatever the code does:",
            "", table(["path", "config", "req/s", "server µs", "PostgreSQL µs", "Redis µs", "sum µs",
                       "2 cores / sum (req/s)"], cpu_rows)]
    profile_path = RESULTS / f"profile{suffix}.json"
    if profile_path.exists():
        out += ["", *profile_section(json.loads(profile_path.read_text()))]
    out += ["", "## Endpoints (1 worker)", "", f"![throughput]({plot_dir}/throughput.png)", "",
            "Cache on:", "", table(ENDPOINT_HEAD, endpoint_rows(default, floor)), "",
            "Cache off (CACHE_ENABLED=false): every search reads PostgreSQL:", "",
            table(ENDPOINT_HEAD, endpoint_rows(cold, cold["floor"]["rps"]))]
    out += ["", "## Ratios", "",
            table(["ratio", "value"], [
                ["hit / floor", f2(ratio["hit"])], ["bypass / floor", f2(ratio["bypass"])],
                ["post / floor", f2(ratio["post"])],
                ["hit / bypass", f2(default["hit"]["rps"] / cold["bypass"]["rps"])],
                *[[f"ours / {name}: {e}", f2((cold if e == "bypass" else default)[e]["rps"]
                                             / runs["cache off" if e == "bypass" else "default"][e]["rps"])]
                  for name, runs in peers.items()
                  for e in ("floor", "hit", "miss", "bypass", "post", "deep_offset", "deep_keyset")],
                *([[f"2 workers / 1 worker: {e}",
                    f2(http["workers"]["2"][e]["rps"] / http["workers"]["1"][e]["rps"])]
                   for e in ("floor", "hit", "bypass", "post")] if http["workers"] else [])])]
    out += ["", "## Peers: the same routes on other stacks, same data, settings and cache design", "",
            "The seed README claimed Sanic + uvloop is \"at least 2x faster than NodeJs, gevent, as well as "
            "any other Python asynchronous frameworks\". Each peer serves the same routes over the same "
            "PostgreSQL, Redis, data and pinning. fastapi: FastAPI on uvicorn (uvloop + httptools) running "
            "this service's own timeline code, so only the web framework differs "
            "(bench/peers/fastapi_app.py). node: Fastify with pg and ioredis (auto-pipelining), the same "
            "SQL statements and Redis scripts, the same sorted-set entries, version check, single-flight "
            "fills and 1 s in-process pages dropped by the same invalidation channel (bench/peers/node/"
            "server.js). gevent: a WSGI app on gevent's server (TCP_NODELAY) with psycopg 3 and redis-py "
            "(hiredis, a blocking pool), the same design, SQL and scripts (bench/peers/gevent_app.py). "
            "The peers leave out the outage handling (breaker, feed heartbeat, repair). Ratios ours / "
            "peer are in the table above."]
    paths = ("floor", "hit", "miss", "bypass", "post", "deep_offset", "deep_keyset")

    def server_us(runs: dict[str, Any], path: str) -> float:
        r = runs["cache off" if path == "bypass" else "default"].get(path)
        return float(r["cpu_us_per_request"]["server"]) if r and "cpu_us_per_request" in r else float("nan")

    ours = {"default": default, "cache off": cold}
    out += ["", "What explains the differences: the server's own CPU per request on each path (µs; the "
            "same PostgreSQL and Redis work is behind every stack). The floor column is the HTTP stack "
            "alone, a constant response from the same process: "
            + "; ".join(f"{name} {server_us(runs, 'floor'):,.0f} µs" for name, runs in peers.items())
            + f" against ours {server_us(ours, 'floor'):,.0f} µs. A path's difference beyond the floor's "
            "is what the rest of each stack adds or saves there: its database and Redis drivers, its "
            "event loop and its application code (the profiles above show where ours goes).", "",
            table(["path", "ours µs", *[f"{name} µs" for name in peers]],
                  [[path, f0(server_us(ours, path)), *[f0(server_us(runs, path)) for runs in peers.values()]]
                   for path in paths])]
    for name, runs in peers.items():
        out += ["", f"{name}:", "", table(ENDPOINT_HEAD, endpoint_rows(runs["default"], runs["default"]["floor"]["rps"])),
                "", table(ENDPOINT_HEAD, endpoint_rows(runs["cache off"], runs["cache off"]["floor"]["rps"]))]
    if http["workers"]:
        out += ["", "## Worker counts", "", f"![workers]({plot_dir}/workers.png)", ""]
        rows = []
        for w, runs in sorted(http["workers"].items()):
            for e in ("floor", "hit", "bypass", "post"):
                rows.append([w, e, f0(runs[e]["rps"]), f2(runs[e]["p99_ms"]), f0(runs[e]["server_cpu_pct"]) + "%"])
        out.append(table(["workers", "endpoint", "req/s", "p99 ms", "server CPU"], rows))
    if http["ablation"]:
        out += ["", "## Ablation: each tuning switched off in turn (1 worker)", "",
                f"![ablation]({plot_dir}/ablation.png)", "",
                "Each configuration runs on its own server, and this machine's speed drifts between servers "
                "(compare the floor column, which no tuning but uvloop and the access log touches). Two "
                "speedups are given: raw = req/s with every tuning on ÷ req/s with this one off; vs floor = "
                "the same on ratios to the floor measured on the same server, which cancels the drift but "
                "also hides what a tuning does to the floor itself (uvloop, access log). Differences within "
                "about ±15% are within this machine's noise. A dash: the tuning is not on that path.", ""]
        rows = [["none (every tuning on)", f0(default["floor"]["rps"]), f0(default["hit"]["rps"]),
                 f0(default["miss"]["rps"]), f0(cold["bypass"]["rps"]), f0(default["post"]["rps"])]]
        for label, row in http["ablation"].items():
            if label.startswith("refill storm"):
                continue
            cells = [label, f0(row["floor"]["rps"])]
            for e in ("hit", "miss", "bypass", "post"):
                if e not in row:
                    cells.append("-")
                    continue
                base = (cold if e == "bypass" else default)
                raw = base[e]["rps"] / row[e]["rps"]
                speedup = (base[e]["rps"] / base["floor"]["rps"]) / (row[e]["rps"] / row["floor"]["rps"])
                cells.append(f"{f0(row[e]['rps'])} (×{raw:.2f} raw, ×{speedup:.2f} vs floor)")
            rows.append(cells)
        out.append(table(["switched off", "floor req/s", "hit req/s (speedup)", "miss req/s (speedup)",
                          "bypass req/s (speedup)", "post req/s (speedup)"], rows))
        on, off = (http["ablation"].get("refill storm, single-flight on"),
                   http["ablation"].get("refill storm, single-flight off"))
        if on and off:
            out += ["", "Single-flight matters when many requests miss the same tag at once: here the hot "
                    "tag's entry expires every second (CACHE_TTL_SECONDS=1, no in-process cache):", "",
                    table(["single-flight", "hit req/s", "p99 ms"],
                          [["on", f0(on["hit"]["rps"]), f2(on["hit"]["p99_ms"])],
                           ["off", f0(off["hit"]["rps"]), f2(off["hit"]["p99_ms"])]])]
    out += ["", "## Latency at a constant rate (50% of each endpoint's maximum)", "",
            f"![latency]({plot_dir}/latency.png)", "",
            "Requests are sent on schedule whatever the server does, and latency runs from the scheduled "
            "time (no coordinated omission; bench/rate.py, pinned to the load CPU).", "",
            table(["endpoint", "target req/s", "achieved req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors"],
                  [[e, f0(r["target_rps"]), f0(r["achieved_rps"]), f2(r["p50_ms"]), f2(r["p90_ms"]),
                    f2(r["p99_ms"]), f2(r["p999_ms"]), str(r["errors"])]
                   for e, r in http["constant_rate"].items()])]
    out += ["", "## Cross-worker visibility of a new tweet", "",
            f"{vis['samples']} posts under background load ({vis['background']}), {vis['workers']} workers: "
            f"{vis['measures']}.", "",
            table(["p50 ms", "p90 ms", "p99 ms", "max ms"],
                  [[f2(vis["p50_ms"]), f2(vis["p90_ms"]), f2(vis["p99_ms"]), f2(vis["max_ms"])]])]
    out += ["", "## Microbenchmarks (pytest-benchmark, real PostgreSQL and Redis)", "",
            "Async benchmarks run on one long-lived uvloop loop, 50 awaits per round; times are per "
            "operation.", "", micro_section(micro)]
    soak_path = RESULTS / "soak.json"
    if soak_path.exists():
        out += ["", *soak_section(json.loads(soak_path.read_text()))]
    instances_path = RESULTS / "instances.json"
    if instances_path.exists():
        out += ["", *instances_section(json.loads(instances_path.read_text()))]
    chaos_path, scale_path = RESULTS / "chaos.json", RESULTS / "scale.json"
    if scale_path.exists():
        scale = json.loads(scale_path.read_text())
        images.append(scale_plot(scale, folder))
        out += ["", *scale_section(scale, plot_dir)]
    if chaos_path.exists():
        out += ["", *chaos_section(json.loads(chaos_path.read_text()))]
    out += ["", *detection_section(detection)]
    out += ["", "## Settings of every run", "",
            "Every server ran with the defaults of .env.tpl plus these overrides:", ""]
    settings_rows = []
    labelled = [(f"{section}: {label}", runs) for section in ("endpoints", "workers", "ablation")
                for label, runs in http[section].items()]
    labelled += [(f"peer {name}: {label}", runs) for name, configs in http["peer"].items()
                 for label, runs in configs.items()]
    for label, runs in labelled:
        first = next(iter(runs.values()))
        settings_rows.append([label, ", ".join(f"{k}={v}" for k, v in sorted(first["settings"].items()))])
    out.append(table(["run", "overrides"], settings_rows))
    (ROOT / ("RESULTS-quick.md" if args.quick else "RESULTS.md")).write_text("\n".join(out) + "\n")
    if not args.quick:
        publish_scaling(http)
    print(f"wrote {'RESULTS-quick.md' if args.quick else 'RESULTS.md'} and {', '.join(images)}")


if __name__ == "__main__":
    main()
