"""The capacity at an SLO, judged from made-up curves: where a stack stops holding, and how the
report says it."""

from __future__ import annotations

from typing import Any

from bench.curves import bisect, capacity_of, held, merged
from bench.report.capacity import (
    capacity_rows,
    even_lines,
    goal_lines,
    kept_line,
    limit_line,
    mixed_line,
    proof_line,
)


def point(rate: float, p99: float, share: float = 1.0) -> dict[str, Any]:
    p = {"target_rps": rate, "offered_rps": rate * 1.01, "p99_ms": p99, "achieved_share": share}
    p["held"] = held(p, 10.0)
    return p


def test_a_rate_is_held_with_p99_within_the_slo_and_the_requests_answered() -> None:
    assert held({"p99_ms": 9.9, "achieved_share": 0.985}, 10.0)
    assert not held({"p99_ms": 10.1, "achieved_share": 1.0}, 10.0)
    assert not held({"p99_ms": 1.0, "achieved_share": 0.97}, 10.0)  # fast, but shedding
    assert not held({"p99_ms": -1.0, "achieved_share": 1.0}, 10.0)  # nothing answered: no percentile


def test_the_capacity_is_the_highest_rate_held_with_every_lower_rate_held() -> None:
    points = [point(100, 1), point(300, 2), point(500, 30), point(700, 5)]  # 700 held by luck
    assert capacity_of(points, 10.0) == 300 * 1.01
    assert capacity_of(points, 50.0) == 700 * 1.01  # a looser SLO: every rate held
    assert capacity_of([point(100, 50), point(300, 1)], 10.0) == 0.0
    assert capacity_of([point(500, 1), point(100, 1)], 10.0) == 500 * 1.01  # measuring order does not matter


def test_the_bisection_halves_the_gap_at_the_first_rate_missed() -> None:
    assert bisect([point(100, 1), point(300, 2), point(500, 30)], 10.0) == 400
    assert bisect([point(100, 30), point(300, 2)], 10.0) == 50
    assert bisect([point(100, 1)], 10.0) is None


def curves(capacity: float, maximum: float, missed: float | None = None) -> dict[str, Any]:
    """A curve held up to its capacity and missed next at `missed` (10% above it unless given)."""
    points = [{"offered_rps": capacity, "held": True}] if capacity else []
    points.append({"offered_rps": missed or max(capacity, 100) * 1.1, "held": False})
    return {"capacity_rps": capacity, "max_rps": maximum, "points": points}


def test_the_report_gives_ours_over_each_peer_at_the_slo_and_what_a_peer_does_not_serve() -> None:
    stacks = {"ours": {"hit": curves(9000, 12000), "mixed": curves(800, 1000)},
              "granian": {"hit": curves(6000, 9000)}, "node": {"hit": curves(0, 5000)}}
    rows = capacity_rows(stacks, ["hit", "mixed"])
    assert rows[0] == ["hit", "9,000", "6,000 (1.50x)", "0 (peer held no rate)"]
    assert rows[1] == ["mixed", "800", "not served", "not served"]


def test_the_hit_limit_line_judges_the_share_of_the_bare_protocol() -> None:
    stacks = {"ours": {"hit": curves(9000, 60000)}, "bare-protocol": {"hit": curves(20000, 100000)}}
    assert "**0.60**" in limit_line(stacks)[0] and "missed" in limit_line(stacks)[0]
    stacks["ours"]["hit"]["max_rps"] = 80000
    assert "met" in limit_line(stacks)[0]


def test_the_hit_limit_line_splits_the_cpu_per_request_where_both_maxima_measured_it() -> None:
    stacks = {"ours": {"hit": curves(9000, 60000)}, "bare-protocol": {"hit": curves(20000, 100000)}}
    assert len(limit_line(stacks)) == 2  # no split measured: the verdict alone
    stacks["ours"]["hit"]["cpu_us_per_request"] = {"server_user": 25.04, "server_system": 16.5}
    stacks["bare-protocol"]["hit"]["cpu_us_per_request"] = {"server_user": 4.0, "server_system": 9.0}
    text = " ".join(limit_line(stacks))
    assert "ours used 25.0 µs of user CPU and 16.5 µs of system CPU; the bare protocol 4.0 and 9.0" in text
    assert "ours would spend 20.5 µs a request" in text and "**0.63** of the bare protocol's rate" in text


def test_the_generator_proof_says_when_it_did_not_hold() -> None:
    proof = {"target_rps": 90000, "achieved_share": 0.97, "held": False, "p99_ms": 3.0,
             "generator_cpu_s": 2.5, "wall_s": 5, "generator_us_per_request": 6.0}
    assert "not held" in proof_line(proof)
    assert "not held" not in proof_line({**proof, "achieved_share": 0.995, "held": True})


def test_each_peer_is_judged_against_its_own_goal_path_by_path() -> None:
    stacks = {"ours": {"hit": curves(9000, 12000), "post": curves(0, 1500)},
              "granian": {"hit": curves(6000, 13000), "post": curves(0, 1400)},
              "blacksheep": {"hit": curves(4000, 7000)}}
    lines = goal_lines(stacks, ["hit", "post"])
    assert lines[0] == ("- against granian: hit 0.92x at the maximum (goal 1x: missed), ahead at the SLO; "
                        "post 1.07x at the maximum (goal 1x: met), neither held a rate at the SLO.")
    assert lines[1] == "- against blacksheep: hit 1.71x at the maximum (goal 2x: missed), ahead at the SLO."
    assert "the Peers section gives the measured reason" in lines[-1]  # a goal missed: where its reason is
    stacks["ours"]["hit"] = curves(9000, 30000)
    assert not any("Peers section" in line for line in goal_lines(stacks, ["hit", "post"]))


def test_capacities_the_rates_measured_cannot_tell_apart_are_even_not_ahead_or_behind() -> None:
    def verdict(ours: dict[str, Any], peer: dict[str, Any]) -> str:
        return goal_lines({"ours": {"miss": ours}, "node": {"miss": peer}}, ["miss"])[0]

    # ours missed 3,350, a rate the peer held: behind, measured
    assert "behind at the SLO" in verdict(curves(3050, 6000, missed=3350), curves(4210, 6000))
    # ours missed only above the peer's capacity: never measured at a rate the peer held
    line = verdict(curves(6559, 8000, missed=6867), curves(6716, 8000))
    assert "even at the SLO within the rates measured (ours held 6,559 and missed 6,867; node held 6,716)" \
        in line
    # the same on the other side: the peer missed only above ours
    line = verdict(curves(6559, 8000), curves(6452, 8000, missed=6745))
    assert "even at the SLO within the rates measured (node held 6,452 and missed 6,745; ours held 6,559)" \
        in line
    assert "ahead at the SLO" in verdict(curves(6559, 8000), curves(6452, 8000, missed=6500))


def test_a_merged_run_keeps_each_curve_not_measured_again_with_its_commit() -> None:
    last = {"facts": {"commit": "old1234"},
            "stacks": {"ours": {"hit": curves(1, 1), "miss": curves(2, 2)}, "node": {"miss": curves(3, 3)}}}
    measured = {"ours": {"hit": curves(9, 9)}, "granian": {"hit": curves(8, 8)}}
    stacks = merged(last, measured)
    assert stacks["ours"]["hit"]["max_rps"] == 9 and "measured_at" not in stacks["ours"]["hit"]
    assert stacks["ours"]["miss"]["measured_at"] == "old1234" and stacks["node"]["miss"]["max_rps"] == 3
    assert stacks["granian"] == {"hit": measured["granian"]["hit"]}
    assert kept_line(stacks)[0].startswith("Paths measured in an earlier run and kept: miss at old1234")
    again = merged({"facts": {"commit": "newer99"}, "stacks": stacks}, {})  # the first commit stays
    assert again["ours"]["miss"]["measured_at"] == "old1234"


def test_the_mixed_stream_that_holds_no_rate_is_explained_by_its_hashing_and_posts() -> None:
    def low(p50: float, p99: float, rate: float) -> dict[str, Any]:
        return {**point(rate, p99), "p50_ms": p50}
    stacks = {"ours": {"mixed": {"points": [low(0.8, 42.0, 93), low(0.9, 80.0, 300)]},
                       "post": {"points": [low(7.75, 16.7, 194)]}}}
    line = " ".join(mixed_line(stacks, 10, 38_600))
    assert "not even its lowest, 94 req/s" in line and "p99 42.00 ms" in line
    assert "39 ms of the worker's CPU a login" in line and "p50 7.75 ms at 196 req/s" in line
    stacks["ours"]["mixed"]["points"][0] = low(0.8, 9.0, 93)  # held at its lowest rate: nothing to explain
    assert mixed_line(stacks, 10, 38_600) == []


def test_a_stack_that_held_every_rate_it_was_offered_trails_one_that_held_more() -> None:
    peer = {"capacity_rps": 50_000, "max_rps": 45_000, "points": [{"offered_rps": 50_000, "held": True}]}
    line = goal_lines({"ours": {"hit": curves(90_000, 80_000)}, "granian": {"hit": peer}}, ["hit"])[0]
    assert "ahead at the SLO (granian held every rate it was offered, up to 50,000)" in line


def test_an_even_capacity_is_explained_by_what_each_request_cost() -> None:
    ours, node = curves(6559, 8000, missed=6867), curves(6716, 8000)
    ours["cpu_us_per_request"] = {"server": 77.0, "postgres": 81.0, "redis": 0.0}
    node["cpu_us_per_request"] = {"server": 96.0, "postgres": 86.0, "redis": 0.0}
    lines = even_lines({"ours": {"bypass": ours}, "node": {"bypass": node}}, ["bypass"])
    text = " ".join(lines)
    assert "bypass, even with node: per request at each maximum, our server 77 µs, node's server 96" in text
    assert "PostgreSQL and Redis 81 µs behind ours" in text and "a cheaper server moves it little" in text
    ours["cpu_us_per_request"]["postgres"] = 20.0  # the database's part small: that clause is not said
    assert "moves it little" not in " ".join(even_lines({"ours": {"bypass": ours}, "node": {"bypass": node}},
                                                         ["bypass"]))
    assert even_lines({"ours": {"bypass": curves(9000, 9000)}, "node": {"bypass": node}}, ["bypass"]) == []
