"""The sections of RESULTS.md and docs/SCALING.md that other commands measure (make bench's
profiles, make bench-detect, make soak, make chaos, make bench-instances, make bench-scale), each
rendered from its recorded results only, and published in place by the command that measured it."""

from __future__ import annotations

from typing import Any

from bench.chaos.load import MIN_SUCCESSES
from bench.facts import changed_since
from bench.paths import RESULTS_MD, SCALING_MD
from bench.report.markdown import commit_of, f0, f2, heading, publish_section, table
from bench.report.plots import SCALE_PATHS
from bench.report.verdicts import MET, MISSED, Projection, project, relative_change


def titled(title: str, result: dict[str, Any]) -> str:
    """A section's heading, saying where its run was measured when that is not the current
    service (markdown.heading)."""
    commit = commit_of(result)
    return heading(title, commit, changed_since(commit))


def profile_section(recorded: dict[str, Any]) -> list[str]:
    profiles: dict[str, Any] = recorded.get("paths", recorded)  # recorded before the commit was: paths alone
    parts = list(dict.fromkeys(name for p in profiles.values() for name in p["parts"]))
    out = [titled("## Where the server's CPU goes (py-spy)", recorded), "",
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
    graphs = [f"[{path}]({p['flame_graph']})" for path, p in profiles.items() if p.get("flame_graph")]
    if graphs:
        out += ["", "Flame graphs of the same samples, one per path (a frame's width is its share of the worker's "
                "CPU, itself and what it calls; coloured by the parts above; hover for figures): "
                + ", ".join(graphs) + "."]
    out += ["", "Collapsed stacks for other flame graph tools: bench/results/profiles/ (after a run)."]
    return out




DETECTION_TITLE = "## CI performance regression check"


def detection_section(detection: dict[str, Any] | None, injected: dict[str, Any] | None = None) -> list[str]:
    """RESULTS.md's section on the CI check, from bench/results/detection.json (bench/detect.py)."""
    out = [titled(DETECTION_TITLE, detection or {}), ""]
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
        "once more and judges both runs' rounds pooled (`--confirm`).",
    ]
    return out + injected_lines(injected)


def injected_lines(injected: dict[str, Any] | None) -> list[str]:
    """Slowdowns outside the service's code (bench/inject.py): caught only because each side of
    the check runs its own environment and database."""
    if not injected:
        return ["", "Slowdowns outside the code (a migration, a dependency): not measured yet: "
                "`python -m bench.inject`."]
    n = injected["runs"]
    words = {"migration": "a migration adding a trigger with busy work on every insert into tweets",
             "dependency": "a new requirement: a package whose import hook makes asyncpg's fetchrow do busy work"}
    return ["", f"Slowdowns outside the code, measured by `python -m bench.inject` on {injected['measured_at']} "
            f"at commit {injected['commit'][:12]}: each a candidate tree of HEAD's files plus one change, "
            "checked against HEAD, the baseline on an environment built from its own requirements and a "
            "database migrated by its own sql/ (both sides once ran the candidate's, and saw neither), "
            f"{n} times each, alternating with an unchanged copy of HEAD.", "",
            table(["slowdown", "path", "amount", "its measured effect", "allowed ratio", "runs caught",
                   "clean runs failing", "slowed medians (min - max)", "clean medians (min - max)"],
                  [[words.get(name, name), v["path"], f"{v['amount']} {v['unit']}", f"{v['calibrated_ratio']:.2f}x",
                    f"{v['allowed']:.2f}", f"{v['caught']} / {n}", f"{v['false_alarms']} / {n}",
                    f"{min(v['slow_ratios']):.3f} - {max(v['slow_ratios']):.3f}",
                    f"{min(v['clean_ratios']):.3f} - {max(v['clean_ratios']):.3f}"]
                   for name, v in injected["scenarios"].items()]), *costly_lines(injected.get("costly_trigger"))]


def costly_lines(costly: dict[str, Any] | None) -> list[str]:
    """A migration's costly trigger: a slow post the check fails on, not a slow preparation."""
    if not costly:
        return []
    c, k = costly["costly"], costly["clean"]
    return ["", f"A migration adding a trigger that sleeps {costly['trigger_ms']} ms on every inserted tweet "
            f"(`python -m bench.inject --costly-trigger`, {costly['measured_at']}, commit {costly['commit'][:12]}): "
            f"the check on post {'**failed**' if c['failed'] else 'passed (MISSED)'} at {c['ratio']:.3f}x, "
            f"in {c['seconds']:.0f} s; an unchanged copy {'failed' if k['failed'] else 'passed'} at "
            f"{k['ratio']:.3f}x in {k['seconds']:.0f} s. Both sides' bench rows are loaded with triggers off "
            "(a data-only load), so the trigger costs the posts measured, not the seeding; each step of the "
            "check's preparation has a time limit and fails by name past it (bench/sides.py)."]




SOAK_TITLE = "## Soak"
CHAOS_TITLE = "## Faults under load (chaos)"
CHAOS_POOLED_TITLE = "## Faults under load behind PgBouncer, with a replica (chaos, pooled tier)"
FAULT_WORDS = {"steady": "none (warm-up)", "redis-kill": "Redis killed (-9), restarted",
               "redis-freeze": "Redis frozen (SIGSTOP/SIGCONT)", "redis-cut": "Redis cut off (proxy)",
               "pg-kill": "PostgreSQL postmaster killed (-9), restarted",
               "replica-kill": "the replica killed (-9), made again",
               "worker-kill": "one service worker killed (-9)", "sigterm": "service SIGTERM, started again"}
TIERS = {"single": ("2 workers", "bench/results/chaos.json", ""),
         "pooled": ("2 workers through PgBouncer (transaction mode), searches that miss the cache on "
                    "the streaming replica", "bench/results/chaos-pooled.json", " --tier pooled")}

STEADY_UNTIL = f"drawn out until the phase has {MIN_SUCCESSES} acknowledged writes and {MIN_SUCCESSES} successful reads"


def chaos_section(result: dict[str, Any]) -> list[str]:
    """A RESULTS.md chaos section, from bench/results/chaos.json or chaos-pooled.json (bench/chaos/)."""
    s = result["settings"]
    tier = s.get("tier", "single")
    against, source, flag = TIERS[tier]
    lines = [
        titled(CHAOS_POOLED_TITLE if tier == "pooled" else CHAOS_TITLE, result), "",
        f"`make chaos` on {s['measured_at']} (commit {s['commit']}): {s['writers']} writers and "
        f"{s['readers']} readers against {against}, {s['tags']} shared tags; each fault "
        f"lasts {s['fault_s']:g} s, then at least {s['steady_s']:g} s of steady load, {STEADY_UNTIL}. A write is *acknowledged* "
        "(201), *refused* (a 4xx, or no connection), *503* (the service said unavailable: not written) "
        "or *no answer / unknown* (sent, and the connection lost before a response, or a 503 saying "
        "PostgreSQL's connection was lost after the write was sent); whether each write that was not "
        "acknowledged landed anyway is looked up in PostgreSQL afterwards. "
        "A *stale read* started after a tweet of its tag was acknowledged and did not show it (or "
        "counted fewer tweets than were acknowledged). *Recovery*: from healing to the first "
        "acknowledged write and successful read that started after it.", "",
        "| fault (in order) | writes | acked | lost | 503 (landed) | no answer / unknown (landed) | "
        "refused (landed) | reads | stale reads | 500 | 503 | recovery s |",
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
        "one still starting, its loop stopped under Sanic's own cleanup, or Sanic's main process "
        "racing its own SIGTERM handler on its worker-state manager after the workers stopped; not counted against "
        "the run, and any request it cut shows as no answer above). Targets, each judged: nothing "
        "lost, no stale read, no 500, every 503 with Retry-After and none while PostgreSQL is up "
        "(from its kill to 2 s after it is back; a request is counted in the phase it began in), no "
        "write answered 503 or refused yet written, no answer or an unknown outcome only where the "
        "fault cuts connections (a worker killed, SIGTERM, PostgreSQL killed), no status but 200, "
        "201 and 503, recovery within 2 s of healing, and at least 20 acknowledged writes and 20 "
        "successful reads in every phase. "
        + ("**All met.**" if not result["problems"] else "**Missed:** " + "; ".join(result["problems"])),
        "", f"Statuses per fault are in {source} (transport errors by name). CI runs "
        f"the same experiment with shorter periods (`make chaos CHAOS_SHORT=1`, or `python -m bench.chaos "
        f"--short{flag}`).", "",
    ]
    return lines


CHAOS_PARTITION_TITLE = "## Network partitions under load (chaos, partition tier)"
PARTITION_WORDS = {"steady": "none (warm-up)", "redis-cut": "instance 1 cut from Redis, both ways",
                   "redis-cut-out": "instance 1's packets to Redis dropped",
                   "redis-cut-in": "Redis's packets to instance 1 dropped",
                   "pg-cut": "instance 1 cut from PostgreSQL", "lb-cut": "HAProxy cut from instance 1",
                   "redis-slow": "instance 1's link to Redis slow and lossy",
                   "pg-slow": "instance 1's link to PostgreSQL slow and lossy",
                   "replica-cut": "the replica cut from the primary (it lags)",
                   "redis-cut-long": "instance 1 cut from Redis, both ways, 3x as long"}


def partition_section(result: dict[str, Any]) -> list[str]:
    """RESULTS.md's partition section, from bench/results/chaos-partition.json: the run with the
    database notices on and the same run with them off, side by side."""
    s, on, off = result["settings"], result["on"], result["off"]
    slow = "; ".join(f"{name}: {1000 * shape['delay']:g} ms each way, {100 * shape['loss']:g}% of chunks lost "
                     "once (a retransmission later)" for name, shape in s.get("slow", {}).items())
    rows = []
    for a, b in zip(on["phases"], off["phases"], strict=True):
        back = a.get("cache_back_s")
        rows.append(f"| {PARTITION_WORDS.get(a['phase'], a['phase'])} | {a['writes']} | {a['acked']} | {a['lost']} | "
                    f"{a['unavailable']} ({a['unavailable_landed']}) | {a['indeterminate']} "
                    f"({a['indeterminate_landed']}) | {a['reads']} | **{a['stale_reads']}** | {a['status_500']} | "
                    f"{a['status_503']} | {'' if a['recover_s'] is None else a['recover_s']} | "
                    f"{'' if back is None else back} | {b['stale_reads']} of {b['reads']} |")
    return [
        titled(CHAOS_PARTITION_TITLE, result), "",
        f"`make chaos` on {s['measured_at']} (commit {s['commit']}): two instances of one worker each, "
        "each on a test host of its own (network namespaces on a bridge, ops/hosts.py), behind HAProxy; "
        "PostgreSQL, its streaming replica (searches) and Redis reached through forwarders on the bridge. "
        "Each fault cuts one link with iptables (the slow ones shape it in its forwarder instead: "
        f"{slow}) for {s['fault_s']:g} s (the long one three times that), then at least {s['steady_s']:g} s "
        f"of steady load, {STEADY_UNTIL}; {s['writers']} writers and {s['readers']} readers on {s['tags']} shared tags "
        "through HAProxy. Counted as in the sections above; *cache back*: from healing to instance "
        "1's first search answered from its cache (HIT or MISS) again. The last column is the same "
        "run with `DATABASE_NOTICES=false`: the stale reads the database notices prevent.", "",
        "| fault (in order) | writes | acked | lost | 503 (landed) | no answer / unknown (landed) | reads | "
        "stale reads | 500 | 503 | recovery s | cache back s | notices off: stale reads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        "Targets, each judged on the run with the notices on: nothing lost, no stale read, no 500, a "
        "503 only from instance 1 while it is cut from PostgreSQL (until 2 s after), no answer only for "
        "requests HAProxy had sent to instance 1 when it was cut from it, recovery and cache back "
        "within 2 s of healing, at least 20 acknowledged writes and 20 successful reads in every "
        "phase; and the run with them off must catch stale reads. "
        + ("**All met.**" if not result["problems"] else "**Missed:** " + "; ".join(result["problems"]))
        + "".join(f" When its cut healed the replica was {row['replica_behind_bytes']:,} bytes of WAL behind "
                  "the primary (a real lag; every search it could not answer went to the primary)."
                  for row in on["phases"] if row.get("replica_behind_bytes")),
        "", "Statuses per fault are in bench/results/chaos-partition.json. CI runs the same experiment "
        "with shorter periods (`make chaos CHAOS_SHORT=1`).", "",
    ]


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
        titled(SOAK_TITLE, result), "",
        f"`make soak` on {result['measured_at']} at commit {commit_of(result) or '(not recorded)'}: Locust MixedUser, {result['users']} users, "
        f"{result['minutes']:g} minutes against 2 workers (bench stack), sampled every {result['sample_s']} s; "
        f"growth is measured from the end of a {result['warmup_s']:.0f} s warm-up to the end of the run. "
        f"{result['requests']:,} requests at {result['rps']:.0f} req/s, {result['failures']} failures, "
        f"p95 {result['p95_ms']:.0f} ms.", "",
        "![soak](bench/plots/soak.png)", "",
        table(["", "RSS MB (after warm-up -> end)", "open fds", "PostgreSQL connections", "Redis connections"], rows),
        "",
        f"Redis used memory: {r['start']:.1f} -> {r['end']:.1f} MB ({r['slope_per_10min']:+.2f} MB per 10 min; "
        "it holds the cache of every tag searched, bounded by maxmemory with LRU eviction).",
        *soak_verdicts(result),
    ]


def soak_verdicts(result: dict[str, Any]) -> list[str]:
    """The soak against the bounds the service sets (bench/soak.py bounds), where it recorded them."""
    b = result.get("bounds")
    if not b:
        return []
    workers = result["per_worker"].values()
    growth = max(w["rss_mb"]["end"] - w["rss_mb"]["start"] for w in workers)
    conns = max(w["pg_conns"]["max"] for w in workers)
    checks = [
        ("no failed request", f"{result['failures']} failures", result["failures"] == 0),
        (f"each worker's RSS grows after the warm-up by at most what its page cache may fill "
         f"(LOCAL_CACHE_BYTES, {b['rss_growth_mb']:.0f} MB)", f"at most {growth:+.1f} MB",
         growth <= b["rss_growth_mb"]),
        (f"each worker's PostgreSQL connections within its pool and the notices' session "
         f"({b['pg_conns']:.0f})", f"at most {conns:.0f}", conns <= b["pg_conns"]),
        (f"Redis within maxmemory ({b['redis_mb']:.0f} MB)", f"{result['redis_mb']['end']:.1f} MB at the end",
         result["redis_mb"]["end"] <= b["redis_mb"]),
    ]
    return ["", "Against the service's bounds:", "",
            table(["bound", "measured", ""], [[name, got, MET if ok else MISSED] for name, got, ok in checks])]


INSTANCES_TITLE = "## Instances behind a load balancer"
DIRECT = "1 instance, direct"
POOLED = "1 instance, through PgBouncer, statements prepared by PgBouncer"
# A pooler that keeps no prepared statement (PgBouncer before 1.21): each statement prepared anew.
POOLED_ANEW = "1 instance, through PgBouncer, each statement prepared anew"
# As before each statement could go alone and searches were calls: every use of a connection a
# transaction setting its own timeout, every search planned anew.
POOLED_WRAPPED = "1 instance, through PgBouncer, each use a transaction, searches planned each time"
# Issue 34's targets for PgBouncer's cost: req/s through it / direct, same run.
POOLED_TARGETS = {"miss": 0.8, "post": 0.9}


def cpu_cell(us: dict[str, float]) -> str:
    """Server µs (+ PgBouncer's, when it ran) / PostgreSQL µs, per request."""
    bouncer = f" + {f0(us['pgbouncer'])}" if us.get("pgbouncer", 0) >= 0.5 else ""
    return f"{f0(us['server'])}{bouncer} / {f0(us.get('postgres', 0))}"


def instances_section(result: dict[str, Any]) -> list[str]:
    """RESULTS.md's section from bench/results/instances.json (bench/instances.py)."""
    rows, paths, plan = result["rows"], result["paths"], result["plan"]
    out = [titled(INSTANCES_TITLE, result), "",
           f"`make bench-instances` (bench/instances.py, commit {result['facts']['commit']}, "
           f"{result['versions']['haproxy']}; {result['versions']['pgbouncer']}): the bench data and paths "
           f"as above, {plan['rounds']} rounds of {plan['seconds']} s per path, medians. Every row shares both "
           f"CPUs between the server side (instances, HAProxy, PgBouncer) and wrk, so on this "
           f"{result['facts']['machine']['cores']}-core machine "
           "more instances only divide the same cores: reported, not gated. Instances are single-process "
           "(WORKERS=1) and share the one PostgreSQL and Redis; HAProxy (`make cluster`, ops/balancer.py) "
           "keeps connections alive on both sides and its CPU counts as the server's. PgBouncer runs in "
           f"transaction mode with {result['pgbouncer_pool_size']} server connections, each statement "
           "sent alone under the statement timeout its server connections carry, and keeps the "
           "service's prepared statements (max_prepared_statements; DB_TRANSACTION_POOLER=true, "
           "DB_POOLER_PREPARED_STATEMENTS=true) unless the row says otherwise. Direct PostgreSQL and "
           "the rows through PgBouncer alone were measured side by side, in interleaved rounds.",
           "", "req/s (p99 ms), and CPU µs per request of the server side (the instances and HAProxy; "
           "PgBouncer's own added after a +) and of PostgreSQL:", ""]
    body = []
    for label in result.get("order", list(rows)):
        runs = rows[label]
        body.append([label, *[f"{f0(runs[p]['rps'])} ({f2(runs[p]['p99_ms'])})" for p in paths],
                     *[cpu_cell(runs[p]["cpu_us_per_request"]) for p in paths]])
    out.append(table(["configuration", *[f"{p} req/s (p99)" for p in paths],
                      *[f"{p} µs server / PostgreSQL" for p in paths]], body))

    def ratio(a: str, b: str) -> list[str]:
        return [f"{rows[a][p]['rps'] / rows[b][p]['rps']:.2f}" for p in paths]

    comparisons = [
        ("the balancer's cost: 1 instance behind HAProxy / direct", "1 instance behind HAProxy",
         "1 instance, direct"),
        ("2 instances / 1 instance, both behind HAProxy", "2 instances behind HAProxy", "1 instance behind HAProxy"),
        ("2 instances behind HAProxy / 1 instance of 2 workers", "2 instances behind HAProxy",
         "1 instance of 2 workers, direct"),
        ("PgBouncer's cost: 1 instance through PgBouncer / direct", POOLED, DIRECT),
        ("PgBouncer's cost with each statement prepared anew (a pooler keeping none) / direct",
         POOLED_ANEW, DIRECT),
        ("PgBouncer's cost as it was (each use a transaction, searches planned each time) / direct",
         POOLED_WRAPPED, DIRECT),
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
    return out + pooled_verdicts(rows, paths)


def pooled_verdicts(rows: dict[str, Any], paths: list[str]) -> list[str]:
    """Each of POOLED_TARGETS against PgBouncer's measured cost (through it / direct)."""
    if POOLED not in rows or DIRECT not in rows:
        return []
    said = []
    for path, target in POOLED_TARGETS.items():
        if path in paths:
            got = rows[POOLED][path]["rps"] / rows[DIRECT][path]["rps"]
            said.append(f"{path} {got:.2f}x (target >= {target:.2f}x: {'met' if got >= target else 'missed'})")
    return ["", "PgBouncer's cost against its targets, req/s through it / direct: " + "; ".join(said) + "."]


SCALING_TITLE = "## Measured here"


def scaling_section(http: dict[str, Any], scale: dict[str, Any] | None,
                    instances: dict[str, Any] | None) -> list[str]:
    """docs/SCALING.md's figures, from the committed results (bench/results/*.json): the cost of
    each operation here, storage per tweet and per cached tag, WAL per post, and what 10x, 100x and
    1000x the measured single-worker rates would need, by plain multiplication."""
    d, bypass = http["endpoints"]["default"], http["endpoints"]["cache off"]["bypass"]
    runs = {"hit": d["hit"], "miss": d["miss"], "bypass": bypass, "post": d["post"]}
    cores = http["facts"]["machine"]["cores"]
    out = [SCALING_TITLE, "",
           f"Written by bench/report/ from bench/results/*.json (make bench, commit {http['facts']['commit']}"
           + (f"; make bench-instances, commit {instances['facts']['commit']}" if instances else "")
           + (f"; make bench-scale, commit {scale['facts']['commit']}" if scale else "")
           + f"); do not edit. One worker on one core of this {cores}-core machine, PostgreSQL and Redis on "
           "the other:",
           "", table(["operation", "req/s", "server µs", "PostgreSQL µs", "Redis µs"],
                     [[k, f0(r["rps"]), f0(r["cpu_us_per_request"]["server"]),
                       f0(r["cpu_us_per_request"]["postgres"]), f0(r["cpu_us_per_request"]["redis"])]
                      for k, r in runs.items()])]
    wal = instances["wal"]["wal_bytes_per_post"] if instances and "wal" in instances else None
    per_tweet, storage = storage_facts(scale)
    facts = ([["PostgreSQL WAL per post", f"{wal:,.0f} bytes"]] if wal is not None else []) + storage
    out += ["", table(["quantity", "measured"], facts + tier_costs(instances))]
    return out + projections(d["post"], d["hit"], d["miss"], wal, per_tweet)


def storage_facts(scale: dict[str, Any] | None) -> tuple[float | None, list[list[str]]]:
    """(bytes per tweet, rows of storage facts) at the largest size make bench-scale measured."""
    if not scale or not scale["sizes"]:
        return None, []
    big = scale["sizes"][-1]
    sizes = big["sizes"]
    stored = sum(sizes[t]["table_bytes"] + sizes[t]["index_bytes"] for t in ("tweets", "tweet_tags"))
    per_tweet = stored / sizes["tweet_rows"]
    return per_tweet, [
        ["tables and indexes per tweet (tweets, tweet_tags)",
         f"{per_tweet:,.0f} bytes (at {sizes['tweet_rows']:,} tweets)"],
        ["Redis memory, a hot tag's entry (its newest 1,000 tweets)", f"{big['redis_bytes']['hot tag entry']:,} bytes"],
        ["Redis memory, a 2-tweet tag's entry", f"{big['redis_bytes']['cold tag entry (mean)']:,} bytes"]]


def tier_costs(instances: dict[str, Any] | None) -> list[list[str]]:
    """HAProxy's and PgBouncer's cost, as ratios to direct, from make bench-instances."""
    if not instances:
        return []
    rows = instances["rows"]
    direct, lb = rows[DIRECT], rows["1 instance behind HAProxy"]
    pooled = rows.get(POOLED) or rows["1 instance, direct, through PgBouncer"]  # its label before 1.21
    return ([[f"HAProxy in front of one instance, {p}", f"{lb[p]['rps'] / direct[p]['rps']:.2f} of direct"]
             for p in ("hit", "post")]
            + [[f"PgBouncer (transaction mode) in front of PostgreSQL, {p}",
                f"{pooled[p]['rps'] / direct[p]['rps']:.2f} of direct"] for p in ("miss", "post")])


def projections(post: dict[str, Any], hit: dict[str, Any], miss: dict[str, Any], wal: float | None,
                per_tweet: float | None) -> list[str]:
    def row(k: int, p: Projection) -> list[str]:
        return [f"{k}x", f0(p.posts), f0(p.searches), f"{p.api_cores:,.1f}", f"{p.postgres_cores:,.1f}",
                "-" if p.wal_bytes_per_s is None else f"{p.wal_bytes_per_s / 1e6:,.1f} MB/s",
                "-" if p.table_bytes_per_day is None else f"{p.table_bytes_per_day / 1e9:,.0f} GB",
                f0(p.invalidations_per_s)]

    return ["", f"Load at multiples of what one worker serves here ({f0(post['rps'])} posts/s and "
            f"{f0(hit['rps'])} cached searches/s, together): the cores each tier would need at this machine's "
            "cost per request (1% of searches missing the cache), the WAL and new table data written, and the "
            "invalidation messages Redis delivers (one per post to every worker, one worker per API core):", "",
            table(["load", "posts/s", "searches/s", "API cores", "PostgreSQL cores", "WAL",
                   "new table data per day", "invalidation deliveries/s"],
                  [row(k, project(k, post, hit, miss, wal, per_tweet)) for k in (1, 10, 100, 1000)])]


def publish_scaling(http: dict[str, Any], scale: dict[str, Any] | None, instances: dict[str, Any] | None) -> None:
    """Rewrite docs/SCALING.md's measured section."""
    publish_section(SCALING_MD, SCALING_TITLE, scaling_section(http, scale, instances), empty="# Scaling\n")


def publish_detection(detection: dict[str, Any], injected: dict[str, Any] | None = None) -> None:
    """Replace RESULTS.md's CI check section in place (the rest of the file is left as measured)."""
    publish_section(RESULTS_MD, DETECTION_TITLE, detection_section(detection, injected))


SCALE_TITLE = "## Cost versus data size"
SCALE_FLAT = {"hit": 0.10, "miss": 0.10, "bypass": 0.10, "post": 0.10, "deep_keyset": 0.10}  # largest vs smallest


def cost_us(run: dict[str, Any]) -> float:
    """A path's CPU per request, all parts: server, PostgreSQL and Redis (µs)."""
    us = run["cpu_us_per_request"]
    return float(us["server"] + us.get("postgres", 0) + us.get("redis", 0))


def scale_targets(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    """SCALE_FLAT judged on the cost per request, largest size against smallest, each path's change
    taken against the hit's (the control: it reads no data, so its change is the machine's drift
    between two measurements minutes apart); the raw change and req/s shown beside it."""
    control = cost_us(large["paths"]["hit"]) / cost_us(small["paths"]["hit"])
    rows = []
    for path, allowed in SCALE_FLAT.items():
        a, b = small["paths"][path], large["paths"][path]
        raw = cost_us(b) / cost_us(a)
        shown = [path, f"within ±{allowed:.0%}", f"{f0(cost_us(a))} → {f0(cost_us(b))}", f"{raw - 1:+.1%}"]
        if path == "hit":
            rows.append([*shown, "the control", "reads no data", f"{b['rps'] / a['rps'] - 1:+.1%}"])
            continue
        change, met = relative_change(1.0, raw / control, allowed)
        rows.append([*shown, f"{change:+.1%}", MET if met else MISSED, f"{b['rps'] / a['rps'] - 1:+.1%}"])
    return ["", f"Targets, {f0(small['tweets'])} to {f0(large['tweets'])} tweets, judged on the cost of a request: "
            "the CPU it takes of the server, PostgreSQL and Redis together, largest size against smallest "
            "(deep offset pages are capped by the API at offset 9,900 instead). The sizes are measured minutes "
            "apart, loads of millions of rows between them, on a shared machine whose speed drifts: the hit, "
            "which reads no data, changed its own cost by "
            f"{control - 1:+.1%} (req/s {large['paths']['hit']['rps'] / small['paths']['hit']['rps'] - 1:+.1%}) "
            "between the ends. So each path is judged on its change against the hit's; the raw change and "
            "req/s are shown beside it.", "",
            table(["path", "goal", "CPU µs per request", "change", "against the hit's", "", "req/s change"], rows)]


def loading(size: dict[str, Any]) -> str:
    """A size's loading: seconds (seconds per million tweets added), or that it was there already."""
    added = size.get("added", size["tweets"])
    return f"{f0(size['seed_s'])} ({size['seed_s'] / added * 1e6:,.1f})" if added else "already seeded"


PROJECTED_TWEETS = 200_000_000


def projection(largest: dict[str, Any]) -> list[str]:
    """Disk and memory for PROJECTED_TWEETS, scaled linearly from the largest size measured."""
    per = PROJECTED_TWEETS / largest["tweets"]
    sizes = largest["sizes"]
    tables = sum(sizes[t]["table_bytes"] for t in ("tweets", "tweet_tags", "tags")) * per
    indexes = sum(sizes[t]["index_bytes"] for t in ("tweets", "tweet_tags", "tags")) * per
    per_million = (tables + indexes) / (PROJECTED_TWEETS / 1e6)
    hot = largest["redis_bytes"]["hot tag entry"]
    return ["", f"Projected to {PROJECTED_TWEETS / 1e6:,.0f}M tweets, linearly from {f0(largest['tweets'])} "
            f"({per_million / 2**20:,.0f} MB per million tweets, tables and indexes): about "
            f"{tables / 2**30:,.1f} GB of tables and {indexes / 2**30:,.1f} GB of indexes on disk, before WAL, "
            "free space after updates and backups. Assumptions: the same mix of 1-3 tags a tweet and "
            "message lengths; searches read the newest pages of a tag, so the memory that keeps them off "
            f"the disk is the indexes' upper levels and recent leaves plus the recent heap, well under the "
            f"{indexes / 2**30:,.1f} GB of whole indexes (which a deep page or a cold tag may touch). Redis does "
            f"not grow with tweets: a tag's entry holds at most its newest tweets (the hot tag's is "
            f"{hot / 1024:,.0f} KB at every size), so its memory is the number of tags searched times their "
            "entry size, bounded by its maxmemory."]


def scale_section(result: dict[str, Any], plot_dir: str) -> list[str]:
    """RESULTS.md's section from bench/results/scale.json (bench/scale.py, make bench-scale)."""
    runs = result["sizes"]
    paths = [p for p in SCALE_PATHS if p in runs[0]["paths"]]
    out = [titled(SCALE_TITLE, result), "",
           f"`make bench-scale` (bench/scale.py, commit {result['facts']['commit']}): the bench data at "
           "growing numbers of tweets, each path measured as above (1 worker, pinned, "
           f"{result['plan']['rounds']} rounds of {result['plan']['seconds']} s, medians), within a "
           f"budget of {result['budget_s']:.0f} s. "
           + ("The smallest size is seeded; each larger one grows the same database by the newer tweets "
              "it lacks, loaded in bulk (bench/seed.py `grow`: COPY, indexes built after the load). "
              if any(r.get("grown") for r in runs) else "")
           + (f"Stopped {result['stopped']}." if result["stopped"] else "Every size ran."), "",
           f"![scale]({plot_dir}/scale.png)", "",
           table(["tweets", "hot tag's tweets", "loading s (s per million tweets)",
                  *[f"{p} req/s (p99 ms)" for p in paths]],
                 [[f0(r["tweets"]), f0(r["sizes"]["hot_tag_tweets"]),
                   loading(r),
                   *[f"{f0(r['paths'][p]['rps'])} ({f2(r['paths'][p]['p99_ms'])})" for p in paths]]
                  for r in runs]), "",
           "Sizes on disk and in Redis:", "",
           table(["tweets", *[f"{t} table + indexes MB" for t in ("tweets", "tweet_tags", "tags")],
                  "Redis: hot tag entry KB", "Redis: cold tag entry bytes", "WAL per post, bytes"],
                 [[f0(r["tweets"]),
                   *[f"{r['sizes'][t]['table_bytes'] / 2**20:,.0f} + {r['sizes'][t]['index_bytes'] / 2**20:,.0f}"
                     for t in ("tweets", "tweet_tags", "tags")],
                   f"{r['redis_bytes']['hot tag entry'] / 1024:,.0f}", f0(r["redis_bytes"]["cold tag entry (mean)"]),
                   f0(r["wal_bytes_per_post"]) if "wal_bytes_per_post" in r else "not measured"]
                  for r in runs])]
    out += ["", "CPU per request by size (µs: server / PostgreSQL), which part grows with the data:", "",
            table(["tweets", *paths],
                  [[f0(r["tweets"]), *[f"{f0(r['paths'][p]['cpu_us_per_request']['server'])} / "
                                       f"{f0(r['paths'][p]['cpu_us_per_request']['postgres'])}" for p in paths]]
                   for r in runs])]
    if len(runs) > 1:
        out += scale_targets(runs[0], runs[-1])
    out += projection(runs[-1])
    ends = [r for r in (runs[0], runs[-1]) if "plans" in r]
    for label in ends[0]["plans"] if ends else []:
        out += ["", f"<details><summary>Plan of the search statement, {label}, at "
                f"{' and '.join(f0(r['tweets']) for r in ends)} tweets (EXPLAIN ANALYZE, BUFFERS)</summary>", ""]
        for r in ends:
            out += [f"{f0(r['tweets'])} tweets:", "", "```", r["plans"][label], "```", ""]
        out.append("</details>")
    return out


