"""make bench-network's judgement of a run and its section, on made-up runs."""

from __future__ import annotations

from typing import Any

from bench.report.network import problems, section


def curve(max_rps: float, capacity: float, errors: int = 0) -> dict[str, Any]:
    point = {"held": True, "non_2xx": errors, "transport_errors": 0}
    return {"max_rps": max_rps, "capacity_rps": capacity, "capacity_loose_rps": capacity * 1.2,
            "relay_us_per_request": 12.5, "points": [point]}


def run(postgres_ms: float = 1.3, redis_ms: float = 1.2, errors: int = 0) -> dict[str, Any]:
    measured = {"postgres_ms": postgres_ms, "redis_ms": redis_ms}
    return {"rtt_ms": 1.0, "commit": "abc1234", "measured": measured,
            "stacks": {"ours": {"hit": curve(9000, 6000, errors)}, "granian": {"hit": curve(6000, 3000)}},
            "ablation": {"every tuning on": {"hit": {"rps": 9000.0}},
                         "version read in its own round trip": {"hit": {"rps": 6000.0}},
                         "refill storm, single-flight on": {"hit": {"rps": 5000.0}},
                         "refill storm, single-flight off": {"hit": {"rps": 2500.0}}}}


def test_a_round_trip_shorter_than_set_or_far_longer_is_a_problem() -> None:
    assert problems(run()) == []
    assert "postgres answered in 0.400 ms" in problems(run(postgres_ms=0.4))[0]  # the relay did not delay
    assert "redis answered in 2.500 ms" in problems(run(redis_ms=2.5))[0]


def test_errors_at_a_rate_held_are_a_problem() -> None:
    assert "ours hit answered 3 errors" in problems(run(errors=3))[0]


def test_the_section_gives_each_rtt_ours_against_each_peer_and_the_ablation_ratios() -> None:
    result = {"facts": {"relay_cpu": "1", "commit": "abc1234"}, "rtts": {"1": run()},
              "plan": {"slo_ms": 10.0, "loose_factor": 5, "fractions": [0.5, 1.0], "seconds": 3.0}}
    text = "\n".join(section(result))
    assert "**RTT 1 ms** (measured at abc1234: SELECT 1 1.300 ms, PING 1.200 ms" in text
    assert "| hit | 9,000 / 6,000 / 7,200 | 12.50 | 6,000 / 3,000 / 3,600 (1.50x / 2.00x / 2.00x) |" in text
    assert "| version read in its own round trip | 6,000 (0.67x) |  |  |" in text
    assert "| refill storm, single-flight off | 2,500 (0.50x) |  |  |" in text
