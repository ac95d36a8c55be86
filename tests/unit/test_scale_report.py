"""make bench-scale's section, on a made-up run: loading speed, targets and both ends' plans."""

from __future__ import annotations

from typing import Any

from bench.report.runs import scale_section

RELATIONS = ("tweets", "tweet_tags", "tags")
PATHS = ("hit", "miss", "bypass", "post", "deep_offset", "deep_keyset")


def size(tweets: int, rps: float, seed_s: float, grown: bool, post_pg_us: float = 20.0) -> dict[str, Any]:
    path = {"rps": rps, "p99_ms": 2.0, "cpu_us_per_request": {"server": 50.0, "postgres": 20.0}}
    relation = {"table_bytes": 2**20, "index_bytes": 2**20}
    return {"tweets": tweets, "seed_s": seed_s, "added": tweets if not grown else tweets - 200_000,
            "grown": grown, "paths": dict.fromkeys(PATHS, path) | {
                "miss": {**path, "rps": rps * 0.5},
                "post": {**path, "cpu_us_per_request": {"server": 50.0, "postgres": post_pg_us,
                                                        "redis": 10.0}}},
            "sizes": {"hot_tag_tweets": tweets // 3, **dict.fromkeys(RELATIONS, relation)},
            "redis_bytes": {"hot tag entry": 4096, "cold tag entry (mean)": 300},
            "wal_bytes_per_post": 2_345.6,
            "plans": {"first page of a cold tag (miss)": f"Index Only Scan ({tweets})"}}


def test_the_section_gives_seconds_per_million_targets_and_the_plans_at_both_ends() -> None:
    sizes = [size(200_000, 1000.0, 10.0, False), size(2_000_000, 950.0, 90.0, True, post_pg_us=40.0)]
    result = {"facts": {"commit": "abc1234"}, "plan": {"rounds": 2, "seconds": 3}, "budget_s": 1500,
              "stopped": None, "sizes": sizes}
    text = "\n".join(scale_section(result, "bench/plots"))
    assert "each larger one grows the same database" in text
    assert "| 2,000,000 | 666,666 | 90 (50.0) |" in text  # 90 s for 1.8M tweets added
    # judged on CPU per request (server + PostgreSQL + Redis), req/s change shown beside it
    assert "| hit | within ±10% | 70 → 70 | +0.0% | the control | reads no data | -5.0% |" in text
    assert "changed its own cost by +0.0% (req/s -5.0%)" in text
    assert "| post | within ±10% | 80 → 100 | +25.0% | +25.0% | **missed** | -5.0% |" in text  # PG grew
    assert "| miss | within ±10% | 70 → 70 | +0.0% | +0.0% | met | -5.0% |" in text


def test_each_path_is_judged_against_the_hits_own_drift() -> None:
    """A machine 20% faster at the largest size: the hit's cost falls by it, and a path whose cost fell
    as much is flat; one whose cost stayed put grew against it."""
    small, large = size(200_000, 1000.0, 10.0, False), size(2_000_000, 1200.0, 90.0, True)
    faster = {"server": 40.0, "postgres": 16.0}
    large["paths"] = {**large["paths"], "hit": {**large["paths"]["hit"], "cpu_us_per_request": faster},
                      "miss": {**large["paths"]["miss"], "cpu_us_per_request": faster}}
    result = {"facts": {"commit": "abc1234"}, "plan": {"rounds": 3, "seconds": 3}, "budget_s": 1500,
              "stopped": None, "sizes": [small, large]}
    text = "\n".join(scale_section(result, "bench/plots"))
    assert "changed its own cost by -20.0%" in text
    assert "| miss | within ±10% | 70 → 56 | -20.0% | +0.0% | met | +20.0% |" in text
    assert "| bypass | within ±10% | 70 → 70 | +0.0% | +25.0% | **missed** | +20.0% |" in text
    assert "| bypass | within ±10% |" in text and "| deep_keyset | within ±10% |" in text
    assert "| 4 | 300 | 2,346 |" in text  # Redis entries and WAL per post
    # 3 MB (tables) + 3 MB (indexes) at 2M: 3 MB per million tweets, 300 MB of each at 200M
    assert "(3 MB per million tweets, tables and indexes): about 0.3 GB of tables and 0.3 GB of" in text
    assert "Index Only Scan (200000)" in text and "Index Only Scan (2000000)" in text
