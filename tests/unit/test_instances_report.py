"""make bench-instances' section, on a made-up run: PgBouncer's cost judged against its targets."""

from __future__ import annotations

from typing import Any

from bench.report.runs import DIRECT, POOLED, POOLED_ANEW, instances_section, tier_costs

PATHS = ["floor", "hit", "miss", "post"]


def row(rps: dict[str, float]) -> dict[str, Any]:
    us = {"server": 100.0, "postgres": 50.0, "pgbouncer": 20.0}
    return {p: {"rps": rps[p], "p99_ms": 3.0, "cpu_us_per_request": us} for p in PATHS}


def result(pooled_miss: float, pooled_post: float) -> dict[str, Any]:
    direct = {"floor": 5000.0, "hit": 20000.0, "miss": 2000.0, "post": 3000.0}
    rows = {DIRECT: row(direct),
            POOLED: row({**direct, "miss": pooled_miss, "post": pooled_post}),
            POOLED_ANEW: row({**direct, "miss": 1200.0, "post": 2400.0}),
            "1 instance behind HAProxy": row(direct)}
    return {"rows": rows, "paths": PATHS, "plan": {"rounds": 3, "seconds": 4}, "order": list(rows),
            "pgbouncer_pool_size": 20, "versions": {"haproxy": "HAProxy 2.6", "pgbouncer": "PgBouncer 1.24"},
            "facts": {"commit": "abc1234", "machine": {"cores": 2}}}


def test_pgbouncers_cost_is_judged_against_its_targets() -> None:
    text = "\n".join(instances_section(result(1900.0, 2600.0)))
    assert "miss 0.95x (target >= 0.80x: met); post 0.87x (target >= 0.90x: missed)" in text
    assert "| PgBouncer's cost: 1 instance through PgBouncer / direct | 1.00 | 1.00 | 0.95 | 0.87 |" in text
    assert "| PgBouncer's cost with each statement prepared anew (a pooler keeping none) / direct " \
           "| 1.00 | 1.00 | 0.60 | 0.80 |" in text
    text = "\n".join(instances_section(result(1500.0, 2900.0)))
    assert "miss 0.75x (target >= 0.80x: missed); post 0.97x (target >= 0.90x: met)" in text


def test_the_scaling_guide_takes_pgbouncers_cost_from_the_pooled_row() -> None:
    costs = dict((k, v) for k, v in tier_costs(result(1000.0, 1500.0)))
    assert costs["PgBouncer (transaction mode) in front of PostgreSQL, miss"] == "0.50 of direct"
    assert costs["PgBouncer (transaction mode) in front of PostgreSQL, post"] == "0.50 of direct"
