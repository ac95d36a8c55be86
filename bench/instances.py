"""One instance against N instances behind HAProxy, the balancer's own cost against a direct
connection, and PgBouncer's cost against direct PostgreSQL (make bench-instances; make bench runs
it too). Writes bench/results/instances.json and RESULTS.md's section "Instances behind a load
balancer".

Every row on the same bench data, paths and wrk settings as bench/load.py, with the server side
(instances, HAProxy, PgBouncer) and wrk sharing both CPUs: on a 2-core machine more instances
only share the same cores, so the table is reported, not gated.

    python -m bench.instances [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from typing import Any

import asyncpg

from bench import ceiling
from bench.facts import facts
from bench.harness import Server, bench_settings, cpus, log, prepare_stack, token, write_json, wrk
from bench.load import Config, Plan, measure_together
from bench.paths import RESULTS, RESULTS_MD
from bench.report.markdown import publish_section
from bench.report.results import load_json
from bench.report.runs import (
    DIRECT,
    INSTANCES_TITLE,
    POOLED,
    POOLED_ANEW,
    POOLED_WRAPPED,
    instances_section,
    publish_scaling,
)
from ops import pgbouncer, pgbouncer_build, stack
from ops.system import ensure_tool

PATHS = ["floor", "hit", "miss", "post"]
REDACTED = {"DATABASE_URL": "(PgBouncer)", "NOTICES_DATABASE_URL": "(PostgreSQL)"}  # URLs hold the password


def groups(pooler_url: str, direct_url: str) -> list[list[Config]]:
    """The rows, in groups measured side by side (interleaved rounds, bench.load.measure_together):
    direct PostgreSQL and each way through PgBouncer together, so PgBouncer's cost is a ratio of the
    same minutes; the rows behind HAProxy alone (one balancer at a time)."""
    # Migrated by prepare_stack, directly (migrations never go through a transaction pooler); the
    # database notices are listened for on PostgreSQL itself (LISTEN needs a session).
    through = {"DATABASE_URL": pooler_url, "DB_TRANSACTION_POOLER": "true", "MIGRATE_ON_START": "false",
               "NOTICES_DATABASE_URL": direct_url, "DB_POOLER_PREPARED_STATEMENTS": "true"}
    anew = {**through, "DB_POOLER_PREPARED_STATEMENTS": "false"}
    return [
        [Config(DIRECT, shared_cpus=True),
         Config(POOLED, through, shared_cpus=True),
         Config(POOLED_ANEW, anew, shared_cpus=True),
         Config(POOLED_WRAPPED, {**anew, "USE_POOLER_BARE_STATEMENTS": "false",
                                 "USE_POOLER_SEARCH_FUNCTIONS": "false"}, shared_cpus=True)],
        [Config("1 instance behind HAProxy", instances=1)],
        [Config("2 instances behind HAProxy", instances=2)],
        [Config("1 instance of 2 workers, direct", workers=2)],
        [Config("2 instances behind HAProxy, through PgBouncer", through, instances=2)],
    ]


def wal_per_post(dsn: str, seconds: int) -> dict[str, Any]:
    """PostgreSQL's WAL bytes per acknowledged post: the post path under wrk on one instance, the
    WAL position and the tweet count read before and after (docs/SCALING.md uses it)."""
    async def position() -> tuple[int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
            return int(wal), int(await conn.fetchval("SELECT count(*) FROM tweets"))
        finally:
            await conn.close()

    with Server({}, "0") as server:
        bearer = token(server.url)
        wal0, tweets0 = asyncio.run(position())
        run = wrk(server, "post", seconds, bearer, cpus()[1])
        wal1, tweets1 = asyncio.run(position())
    posts = tweets1 - tweets0
    return {"posts": posts, "wal_bytes": wal1 - wal0, "wal_bytes_per_post": (wal1 - wal0) / max(1, posts),
            "rps": run["rps"], "seconds": seconds}


def versions() -> dict[str, str]:
    def first_line(*cmd: str) -> str:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"
    return {"haproxy": first_line(ensure_tool("haproxy", "haproxy"), "-v"),
            "pgbouncer": first_line(pgbouncer_build.binary(), "--version")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s (a check, not a result)")
    args = parser.parse_args()
    plan = Plan(seconds=2 if args.quick else 4, warmup=2, rounds=1 if args.quick else 3,
                ablation_rounds=1 if args.quick else 2, full=False)
    started = time.monotonic()
    log("preparing the bench stack (seeded once, reset every run)")
    dsn = prepare_stack()
    plan.deep_before_id = asyncio.run(ceiling.deep_before_id(dsn))
    settings = bench_settings()
    pooler_url = pgbouncer.start(settings)
    results: dict[str, Any] = {"plan": plan.__dict__, "paths": PATHS, "rows": {},
                               "order": [c.label for g in groups(pooler_url, dsn) for c in g],
                               "pgbouncer_pool_size": pgbouncer.POOL_SIZE, "versions": versions()}
    try:
        for group in groups(pooler_url, dsn):
            log(" | ".join(c.label for c in group))
            measured = measure_together([(c, PATHS) for c in group], plan, plan.rounds)
            for config, row in zip(group, measured, strict=True):
                for run in row.values():  # the pooler's URL holds the password: not recorded
                    run["settings"] = {k: REDACTED.get(k, v) for k, v in run["settings"].items()}
                results["rows"][config.label] = row
    finally:
        pgbouncer.stop(settings)
    results["wal"] = wal_per_post(dsn, int(plan.seconds) * 2)
    log(f"WAL per post: {results['wal']['wal_bytes_per_post']:,.0f} bytes over {results['wal']['posts']:,} posts")
    results["facts"] = facts(dsn, stack.urls(settings)[1])
    results["elapsed_s"] = time.monotonic() - started
    name = "instances-quick.json" if args.quick else "instances.json"
    write_json(RESULTS / name, results)
    if not args.quick:
        publish_section(RESULTS_MD, INSTANCES_TITLE, instances_section(results))
        # docs/SCALING.md uses these too.
        publish_scaling(load_json(RESULTS / "http.json"), load_json(RESULTS / "scale.json"), results)
    log(f"instances run done in {results['elapsed_s']:.0f} s: bench/results/{name}")


if __name__ == "__main__":
    main()
