"""Cost versus data size: every path at growing numbers of tweets (make bench-scale).

For each size, the bench stack is seeded with that many tweets (tags Zipf-distributed over 1,000
topics as in every benchmark, plus the 50,000 cold tags of the miss path), then each path is
measured as in bench/load.py (one worker, pinned, medians of interleaved rounds), and table, index
and Redis sizes are recorded. Sizes run smallest first while the projected time fits the budget
(SCALE_BUDGET_S, 25 minutes): the next size's seed is projected from the last one's seed time
times the growth in rows, and the run says where it stopped and why. Writes
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
from bench.harness import HOT_TAG, bench_settings, log, prepare_stack, write_json
from bench.load import Config, Plan, measure
from bench.paths import PLOTS, RESULTS, RESULTS_MD
from bench.report.markdown import publish_section
from bench.report.plots import scale_plot
from bench.report.runs import SCALE_TITLE, scale_section
from bench.seed import BENCH_SPEC
from ops import stack
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


def one_size(tweets: int, plan: Plan) -> dict[str, Any]:
    spec = replace(BENCH_SPEC, tweets=tweets)
    started = time.monotonic()
    dsn = prepare_stack(spec)
    seed_s = time.monotonic() - started
    plan.deep_before_id = asyncio.run(ceiling.deep_before_id(dsn))
    runs = measure(Config(f"{tweets:,} tweets"), PATHS, plan, plan.rounds)
    memory = redis_memory_per_tag()
    runs.update(measure(Config(f"{tweets:,} tweets, cache off", {"CACHE_ENABLED": "false"}), ["bypass"],
                        plan, plan.rounds))
    return {"tweets": tweets, "seed_s": seed_s, "paths": runs, "sizes": asyncio.run(sizes_of(dsn)),
            "redis_bytes": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--budget", type=float, default=1500.0, help="seconds for the whole run")
    args = parser.parse_args()
    plan = Plan(seconds=3, warmup=2, rounds=2, ablation_rounds=2, full=False)
    started = time.monotonic()
    results: dict[str, Any] = {"plan": plan.__dict__, "budget_s": args.budget, "sizes": [], "stopped": None}
    sizes = [int(s) for s in args.sizes.split(",")]
    for i, tweets in enumerate(sizes):
        if results["sizes"]:
            last = results["sizes"][-1]
            grown = (tweets + BENCH_SPEC.cold_tags * 2) / (last["tweets"] + BENCH_SPEC.cold_tags * 2)
            measuring = time.monotonic() - started - sum(s["seed_s"] for s in results["sizes"])
            projected = last["seed_s"] * grown + measuring / len(results["sizes"])
            left = args.budget - (time.monotonic() - started)
            if projected > left:
                results["stopped"] = (f"before {tweets:,} tweets: projected {projected:.0f} s (seed "
                                      f"{last['seed_s']:.0f} s x {grown:.1f} more rows, plus measuring) "
                                      f"with {left:.0f} s of the {args.budget:.0f} s budget left")
                log(f"stopping: {results['stopped']}")
                break
        log(f"size {i + 1}/{len(sizes)}: {tweets:,} tweets")
        results["sizes"].append(one_size(tweets, plan))
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
