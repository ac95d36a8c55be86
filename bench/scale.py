"""Cost versus data size: every path at growing numbers of tweets (make bench-scale).

The smallest size is seeded as every benchmark's data is (tags Zipf-distributed over 1,000 topics,
plus the 50,000 cold tags of the miss path); each larger size grows the same database by the
newer tweets it lacks, as a bulk load (bench/seed.py grow: COPY, indexes built after the load).
At each size every path is measured as in bench/load.py (one worker, pinned, medians of
interleaved rounds), and table, index and Redis sizes are recorded. Sizes run smallest first
while the projected time fits the budget (25 minutes): the next growth is projected from the
last one's seconds per million tweets, and the run says where it stopped and why. Writes
bench/results/scale.json and the RESULTS.md section "Cost versus data size" with its plot. The
next make bench reseeds its own data.

    python -m bench.scale [--sizes 200000,2000000,4000000,20000000] [--budget 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import asyncpg
import redis

from bench import ceiling
from bench.facts import facts
from bench.harness import HOT_TAG, bench_settings, flush_cache, log, prepare_stack, start_stack, write_json
from bench.load import Config, Plan, measure
from bench.paths import PLOTS, RESULTS, RESULTS_MD
from bench.report.markdown import publish_section
from bench.report.plots import scale_plot
from bench.report.runs import SCALE_TITLE, scale_section
from bench.seed import BENCH_SPEC, data_only, grow, holds
from ops import stack
from service.db import tweets as tweet_sql
from service.settings import ROOT

# 4M: the hot tag then holds over a million tweets (a third of all, by the Zipf law of the seed).
SIZES = (200_000, 2_000_000, 4_000_000, 20_000_000)
PATHS = ["hit", "miss", "post", "deep_offset", "deep_keyset"]
RELATIONS = ("tweets", "tweet_tags", "tags", "users")


async def sizes_of(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, Any] = {
            name: {"table_bytes": await conn.fetchval("SELECT pg_table_size($1::regclass)", name),
                   "index_bytes": await conn.fetchval("SELECT pg_indexes_size($1::regclass)", name)}
            for name in RELATIONS}
        out["hot_tag_tweets"] = await conn.fetchval(
            "SELECT coalesce(sum(tweet_count), 0)::bigint FROM tags WHERE name = $1", HOT_TAG)
        out["tweet_rows"] = await conn.fetchval("SELECT count(*) FROM tweets")
        return out
    finally:
        await conn.close()


async def plans_of(dsn: str, deep_before_id: int) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the search statement (stored JSON) on the pages the paths ask
    for, planned as the service runs it: a prepared statement, so once PostgreSQL settles on its
    generic plan, that plan for every tag (forced here, plan_cache_mode). Where a path's cost grows
    with the data, its plan says which node grows."""
    asked = {"first page of the hot tag (hit, miss, bypass)": (HOT_TAG, 10, 0, tweet_sql.NO_LIMIT),
             "first page of a cold tag (miss)": ("cold1", 10, 0, tweet_sql.NO_LIMIT),
             "deep keyset page of the hot tag": (HOT_TAG, 100, 0, deep_before_id),
             "deep offset page of the hot tag": (HOT_TAG, 100, 9_900, tweet_sql.NO_LIMIT)}
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("PREPARE scale_search (text, bigint, bigint, bigint) AS "
                           + tweet_sql.SEARCH_PAGE[True] + "; SET plan_cache_mode = force_generic_plan")
        plans = {}
        for label, (tag, limit, offset, before) in asked.items():
            # EXECUTE takes no bind parameters: its arguments quoted by PostgreSQL (format's %L)
            explain = await conn.fetchval("SELECT format('EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
                                          "EXECUTE scale_search (%L, %s, %s, %s)', $1::text, $2::bigint, "
                                          "$3::bigint, $4::bigint)", tag, limit, offset, before)
            rows = await conn.fetch(explain)
            plans[label] = "\n".join(r[0] for r in rows)
        return plans
    finally:
        await conn.close()


async def wal_per_post(dsn: str, posts: int = 200) -> float:
    """Bytes of WAL a post writes (the service's own statement, one transaction each, to the hot tag
    and two others): the write cost that grows with index depth and page splits."""
    conn = await asyncpg.connect(dsn)
    try:
        user = await conn.fetchrow("SELECT id, username FROM users ORDER BY id LIMIT 1")
        assert user is not None
        start = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        for i in range(posts):
            tags = [HOT_TAG, f"topic{2 + i % 50}", f"topic{100 + i % 400}"]
            await tweet_sql.post(conn, user["id"], user["username"], f"scale probe {i} #" + " #".join(tags), tags)
        return float(await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", start)) / posts
    finally:
        await conn.close()


def redis_memory_per_tag() -> dict[str, int]:
    """MEMORY USAGE of the hot tag's cached entry (its newest 1,000 tweets; the deep-page runs
    fill it) and the mean over the cold tags' entries the miss runs left (2 tweets each)."""
    client = redis.Redis.from_url(stack.urls(bench_settings())[1])
    try:
        prefix = bench_settings().cache.cache_prefix
        hot = client.memory_usage(f"{prefix}:t:{HOT_TAG}")
        cold = [client.memory_usage(key) for key in
                list(client.scan_iter(match=f"{prefix}:t:cold*", count=1000))[:200]]
        sizes = [c for c in cold if isinstance(c, int)]
        return {"hot tag entry": hot if isinstance(hot, int) else 0,
                "cold tag entry (mean)": sum(sizes) // len(sizes) if sizes else 0}
    finally:
        client.close()


def one_size(tweets: int, plan: Plan, first: bool) -> dict[str, Any]:
    spec = replace(BENCH_SPEC, tweets=tweets)
    started = time.monotonic()
    if first:  # seeded, unless the database holds this seed already (then 0 added)
        held = asyncio.run(holds(start_stack(), spec))
        dsn = prepare_stack(spec)
        added = 0 if held else tweets + BENCH_SPEC.cold_tags * BENCH_SPEC.cold_tweets_per_tag
    else:
        dsn = stack.urls(bench_settings())[0]
        added = asyncio.run(grow(data_only(dsn), spec))
        flush_cache()
    seed_s = time.monotonic() - started
    if added:
        log(f"  {'seeded' if first else 'grown by'} {added:,} tweets in {seed_s:.0f} s "
            f"({seed_s / added * 1e6:.0f} s per million)")
    plan.deep_before_id = asyncio.run(ceiling.deep_before_id(dsn))
    runs = measure(Config(f"{tweets:,} tweets"), PATHS, plan, plan.rounds)
    memory = redis_memory_per_tag()
    runs.update(measure(Config(f"{tweets:,} tweets, cache off", {"CACHE_ENABLED": "false"}), ["bypass"],
                        plan, plan.rounds))
    plans = asyncio.run(plans_of(dsn, plan.deep_before_id))
    wal = asyncio.run(wal_per_post(dsn))  # after the runs: its posts are undone by the next growth
    return {"tweets": tweets, "seed_s": seed_s, "added": added, "grown": not first, "paths": runs, "plans": plans,
            "wal_bytes_per_post": wal, "sizes": asyncio.run(sizes_of(dsn)),
            "redis_bytes": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--budget", type=float, default=1500.0, help="seconds for the whole run")
    args = parser.parse_args()
    plan = Plan(seconds=3, warmup=2, rounds=3, ablation_rounds=3, full=False)
    started = time.monotonic()
    results: dict[str, Any] = {"plan": plan.__dict__, "budget_s": args.budget, "sizes": [], "stopped": None}
    sizes = sorted(int(s) for s in args.sizes.split(","))  # each size grows the one before
    for i, tweets in enumerate(sizes):
        if results["sizes"] and results["sizes"][-1]["added"]:  # a loading rate measured (not already seeded)
            last = results["sizes"][-1]
            per_row = last["seed_s"] / max(1, last["added"])
            adding = tweets - last["tweets"]
            measuring = time.monotonic() - started - sum(s["seed_s"] for s in results["sizes"])
            projected = per_row * adding + measuring / len(results["sizes"])
            left = args.budget - (time.monotonic() - started)
            if projected > left:
                results["stopped"] = (f"before {tweets:,} tweets: projected {projected:.0f} s (adding "
                                      f"{adding:,} tweets at {per_row * 1e6:.0f} s per million, plus "
                                      f"measuring) with {left:.0f} s of the {args.budget:.0f} s budget left")
                log(f"stopping: {results['stopped']}")
                break
        log(f"size {i + 1}/{len(sizes)}: {tweets:,} tweets")
        results["sizes"].append(one_size(tweets, plan, first=not results["sizes"]))
        write_json(RESULTS / "scale.json", results)
    dsn, redis_url = stack.urls(bench_settings())
    results["facts"] = facts(dsn, redis_url)
    results["elapsed_s"] = time.monotonic() - started
    write_json(RESULTS / "scale.json", results)
    plots = PLOTS
    scale_plot(results, plots)
    publish_section(RESULTS_MD, SCALE_TITLE, scale_section(results, plots.relative_to(ROOT).as_posix()))
    log(f"scale run done in {results['elapsed_s']:.0f} s: {json.dumps([s['tweets'] for s in results['sizes']])}")


if __name__ == "__main__":
    main()
