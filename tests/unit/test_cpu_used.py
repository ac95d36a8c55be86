"""CPU per request in the load runs counts a changing set of processes (bench/harness.py)."""

from bench.harness import cpu_used


def test_a_process_gone_during_a_run_does_not_subtract_its_past() -> None:
    before = {10: 5.0, 11: 40.0, 12: 1.0}  # 11 exits during the run (a backend closing)
    after = {10: 5.5, 12: 1.25, 13: 0.5}  # 13 starts during it (an autovacuum worker)
    assert cpu_used(before, after) == 0.5 + 0.25 + 0.5


def test_the_same_processes_count_their_growth() -> None:
    assert cpu_used({1: 2.0, 2: 3.0}, {1: 2.5, 2: 3.0}) == 0.5
