"""The report's and the chaos run's judgements, on numbers made up to sit on each side of a line."""

from __future__ import annotations

from pathlib import Path

from bench.chaos.load import MIN_SUCCESSES, Phase, Read, Write
from bench.chaos.verdicts import (
    acked_by_tag,
    missed,
    phase_of,
    report,
    row_problems,
    unexpected_503s,
    unexpected_cuts,
    unknown_causes,
)
from bench.report.verdicts import (
    MET,
    MISSED,
    at_least,
    at_most,
    binding,
    per_round_ratios,
    project,
    relative_change,
    speedups,
    target_verdict,
)


def test_a_target_met_in_every_round_missed_in_every_round_or_judged_by_the_median() -> None:
    assert target_verdict([0.95, 0.97], 0.96, 0.90)[1] == MET
    assert target_verdict([0.80, 0.85], 0.82, 0.90)[1] == MISSED
    noise, verdict = target_verdict([0.85, 0.95], 0.91, 0.90)
    assert noise == "2 rounds, 85.0% - 95.0%" and verdict == "met by the median, within the noise"
    assert target_verdict([0.85, 0.95], 0.89, 0.90)[1] == "missed by the median, within the noise"
    assert target_verdict([0.95], 0.95, 0.90) == ("1 round: spread not measured", MET)
    assert target_verdict([0.5], 0.5, 0.90)[1] == f"{MISSED} (1 round)"


def test_bounds_and_ratios() -> None:
    assert (at_least(1.0, 1.0), at_least(0.99, 1.0)) == (MET, MISSED)
    assert (at_most(5.0, 5.0), at_most(5.01, 5.0)) == (MET, MISSED)
    assert per_round_ratios([10, 30], [20, 30]) == [0.5, 1.0]
    raw, vs_floor = speedups(base=200, base_floor=400, off=100, off_floor=100)
    assert (raw, vs_floor) == (2.0, 0.5)  # twice the req/s, but on a server twice as fast
    assert relative_change(100, 109, 0.10) == (0.09000000000000008, True)
    assert relative_change(100, 89, 0.10)[1] is False


def test_what_binds_a_path_is_the_servers_core_when_it_is_full_else_every_core() -> None:
    busy = {"server_cpu_pct": 97, "cpu_us_per_request": {"server": 150, "postgres": 0, "redis": 10}}
    assert binding(busy, 2).startswith("the server's core: 97% busy at 150 µs")
    shared = {"server_cpu_pct": 60, "cpu_us_per_request": {"server": 400, "postgres": 500, "redis": 100}}
    assert binding(shared, 2).endswith("at most 2,000 req/s") and binding(shared, 2).startswith("both cores")
    assert binding(shared, 4).startswith("all 4 cores") and binding(shared, 4).endswith("at most 4,000 req/s")
    # the server's own split of its CPU (user, system) is not counted a second time
    split = {"server_cpu_pct": 60, "cpu_us_per_request": {"server": 400, "postgres": 500, "redis": 100,
                                                         "server_user": 300, "server_system": 100}}
    assert binding(split, 2).endswith("at most 2,000 req/s")


def test_a_projection_multiplies_what_one_worker_costs() -> None:
    post = {"rps": 1000, "cpu_us_per_request": {"server": 500, "postgres": 400}}
    hit = {"rps": 5000, "cpu_us_per_request": {"server": 100, "postgres": 0}}
    miss = {"rps": 800, "cpu_us_per_request": {"server": 700, "postgres": 1000}}
    p = project(10, post, hit, miss, wal_per_post=2000, bytes_per_tweet=None)
    assert (p.posts, p.searches) == (10_000, 50_000)
    assert p.api_cores == (10_000 * 500 + 50_000 * 100) / 1e6 == 10.0
    assert p.postgres_cores == (10_000 * 400 + 500 * 1000) / 1e6
    assert p.wal_bytes_per_s == 20_000_000 and p.table_bytes_per_day is None
    assert p.invalidations_per_s == 10_000 * 10.0


def test_a_read_that_began_after_an_ack_and_missed_it_is_stale() -> None:
    acked = Write(0, "m1", ["t"], start=1.0, end=2.0, outcome="acked", status="201", tweet_id=7)
    by_tag = acked_by_tag([acked, Write(0, "m2", ["t"], 1.0, 2.0, outcome="refused")])
    assert by_tag["t"] == [acked]
    assert missed(Read("t", start=2.5, status="200", total=0, ids=[]), by_tag) == [acked]
    assert missed(Read("t", start=2.5, status="200", total=1, ids=[7]), by_tag) == []
    assert missed(Read("t", start=1.5, status="200", total=0, ids=[]), by_tag) == []  # began before the ack
    assert missed(Read("t", start=2.5, status="503"), by_tag) == []


def test_phases_and_503s_while_postgresql_was_up() -> None:
    phases = [Phase("steady", 0.0, end=10.0), Phase("pg-kill", 10.0, healed=12.0, end=20.0)]
    assert [phase_of(phases, t) for t in (0.0, 9.9, 10.0, 25.0)] == [0, 0, 1, 1]
    expected = Read("t", start=11.0, end=11.5, status="503")
    late = Read("t", start=14.5, end=14.6, status="503")  # more than 2 s after PostgreSQL was back
    early = Read("t", start=2.0, end=2.5, status="503")
    assert unexpected_503s(phases, [expected, late, early]) == {"pg-kill": 1, "steady": 1}


def test_the_chaos_run_counts_what_cut_off_each_post_of_unknown_outcome(tmp_path: Path) -> None:
    from service.errors import WRITE_UNKNOWN_LOGGED

    cut, other = "ConnectionDoesNotExistError('connection was closed in the middle of operation')", "E('x')"
    log = tmp_path / "service.log"
    log.write_text(f"[2026-12-06 16:00:01] [41] [WARNING] {WRITE_UNKNOWN_LOGGED} {cut}\n"
                   "[2026-12-06 16:00:01] [41] [INFO] something else\n"
                   f"[2026-12-06 16:00:02] [42] [WARNING] {WRITE_UNKNOWN_LOGGED} {cut}\n"
                   f"[2026-12-06 16:00:02] [42] [WARNING] {WRITE_UNKNOWN_LOGGED} {other}\n")
    assert unknown_causes(log) == {cut: 2, other: 1}


def test_the_chaos_report_names_every_lost_write() -> None:
    phases = [Phase("steady", 0.0, end=10.0)]
    writes = [Write(0, "m1", ["t"], 1.0, 2.0, outcome="acked", status="201", tweet_id=1),
              Write(0, "m2", ["t"], 3.0, 4.0, outcome="acked", status="201", tweet_id=2)]
    final = {"landed": {"m1": 1}, "db_ids": {"t": {1}}, "searched": {"t": {1}}, "totals": {"t": 1}}
    result = report(phases, writes, [], ["t"], final)
    assert result["phases"][0]["lost"] == 1 and result["final"]["lost"] == 1
    assert result["final"]["missing_from_search"] == 1
    assert "steady: 1 acknowledged writes lost" in result["problems"]
    assert "after healing: lost = 1" in result["problems"]


def healthy_row(phase: str) -> dict[str, object]:
    return {"phase": phase, "lost": 0, "stale_reads": 0, "status_500": 0, "missing_retry_after": 0,
            "refused_landed": 0, "unavailable_landed": 0, "indeterminate": 0,
            "write_statuses": {"201": 50}, "read_statuses": {"200": 50}, "acked": 50, "reads_ok": 50,
            "recover_s": 0.1}


def test_the_chaos_run_judges_every_count_it_shows() -> None:
    assert row_problems(healthy_row("redis-kill")) == []
    spoilt = [("unavailable_landed", 1, "not written) written anyway"),
              ("recover_s", 2.5, "recovered in 2.5 s"), ("recover_s", None, "recovered in None"),
              ("acked", MIN_SUCCESSES - 1, "only"), ("reads_ok", 0, "only"),
              ("write_statuses", {"201": 50, "429": 1}, "writes answered {'429': 1}"),
              ("read_statuses", {"200": 50, "404": 1}, "reads answered {'404': 1}")]
    for key, value, says in spoilt:
        found = row_problems({**healthy_row("redis-kill"), key: value})
        assert len(found) == 1 and says in found[0], (key, found)


def test_no_answer_is_expected_only_while_a_fault_cuts_the_services_connections() -> None:
    phases = [Phase("steady", 0.0, end=10.0), Phase("sigterm", 10.0, healed=12.0, end=20.0)]
    cut = Write(0, "m1", ["t"], 11.0, 11.5, outcome="indeterminate", status="ReadError")
    # began in the steady phase, still in flight when the worker was stopped
    overlapping = Read("t", start=9.9, end=10.1, status="RemoteProtocolError")
    stray = Read("t", start=3.0, end=3.1, status="ReadTimeout")
    answered = Read("t", start=4.0, end=4.1, status="200")
    assert unexpected_cuts(phases, [cut, overlapping, stray, answered]) == {"steady": 1}


def test_a_peer_claim_holds_only_at_its_goal() -> None:
    from bench.report.verdicts import claim, peer_goal

    goals = (peer_goal("node", "hit"), peer_goal("node", "post"), peer_goal("gevent", "hit"))
    assert goals == (3.0, 1.0, 2.0)
    assert claim(3.0, 3.0).startswith("holds") and claim(2.99, 3.0).startswith("**not yet**")


SANIC_HANDLER_RACE = """Traceback (most recent call last):
  File "/p/.venv/lib/python3.11/site-packages/sanic/worker/manager.py", line 400, in shutdown_signal
    self.shutdown()
  File "/p/.venv/lib/python3.11/site-packages/sanic/worker/process.py", line 58, in set_state
    self.worker_state[self.name] = {
TypeError: 'NoneType' object is not a mapping"""
SANIC_WAIT_RACE = """Traceback (most recent call last):
  File "/p/service/__main__.py", line 51, in serve
    Sanic.serve(primary=app, app_loader=loader)
  File "/p/.venv/lib/python3.11/site-packages/sanic/mixins/startup.py", line 1190, in serve
    while cls._get_process_states(worker_state):
  File "/p/.venv/lib/python3.11/site-packages/sanic/mixins/startup.py", line 1214, in <listcomp>
    (state := s.get("state"))
AttributeError: 'str' object has no attribute 'get'"""
SERVICE_BUG = """Traceback (most recent call last):
  File "/p/service/timeline.py", line 104, in post
    return await asyncio.shield(asyncio.ensure_future(self._post(user, new)))
  File "/p/.venv/lib/python3.11/site-packages/sanic/mixins/startup.py", line 1214, in _get_process_states
AttributeError: 'str' object has no attribute 'get'"""


def test_sanics_own_shutdown_races_are_told_from_the_services_errors() -> None:
    from bench.chaos.verdicts import traceback_kind

    assert traceback_kind(SANIC_HANDLER_RACE) == traceback_kind(SANIC_WAIT_RACE) == "shutdown"
    assert traceback_kind(SERVICE_BUG) == "service"  # any frame of the service's own code counts
    elsewhere = SANIC_WAIT_RACE.replace("_get_process_states", "_something_else")
    assert traceback_kind(elsewhere) == "service"  # Sanic failing elsewhere is not this race


def test_each_goal_missed_against_a_peer_gets_its_measured_reason_and_a_lever() -> None:
    from bench.report.results import Results
    from bench.report.sections import PEER_PATHS, shortfalls

    def run(rps: float, server: float, postgres: float, busy: float = 95) -> dict[str, object]:
        return {"rps": rps, "server_cpu_pct": busy,
                "cpu_us_per_request": {"server": server, "postgres": postgres, "redis": 10.0}}

    ours = {p: run(1000, 100, 100) for p in PEER_PATHS}
    ours["miss"] = run(900, 500, 100)  # the server's core: more µs than the peer's
    ours["deep_offset"] = run(500, 300, 2500, busy=40)  # PostgreSQL: out of the server's reach
    ours["deep_keyset"] = run(800, 200, 900, busy=60)  # cheaper than the peer, bound by both cores
    peer = {p: run(1000, 100, 100) for p in PEER_PATHS}
    peer["hit"] = run(100, 1000, 0)  # a goal met: not listed
    peer["deep_keyset"] = run(900, 450, 900)
    http = {"endpoints": {"default": ours, "cache off": ours}, "facts": {"machine": {"cores": 2}},
            "peer": {"node": {"default": peer, "cache off": peer}}}
    r = Results(quick=False, http=http, micro={}, profile=None, detection=None, soak=None, instances=None,
                scale=None, chaos=None, chaos_pooled=None, chaos_partition=None, injected=None, curves=None,
                network=None, history=[])
    lines = {line.split(":")[0]: line for line in shortfalls(r) if line.startswith("- ")}
    assert set(lines) == {"- miss against node", "- deep_offset against node", "- deep_keyset against node"}
    assert "1x needs about 100 µs; the path is bound by the server's core" in lines["- miss against node"]
    assert "even a server costing nothing would reach 0.80x" in lines["- deep_offset against node"]
    held = "By CPU per request the goal holds (our server 200 µs a request, node's 450: 2.25x); the req/s " \
           "fall short with the path bound by both cores"
    assert held in lines["- deep_keyset against node"]
    assert all(line.rstrip().endswith(".") and "lever" in line for line in lines.values())


def test_post_past_its_ceiling_is_said_to_be_batched_not_a_bound() -> None:
    from bench.report.sections import past_ceiling

    ceiling = {"post": {"rps": 6000.0}}
    assert past_ceiling({"post": {"rps": 5500.0}}, ceiling) == []
    text = " ".join(past_ceiling({"post": {"rps": 9000.0}}, ceiling))
    assert "post passes its ceiling (150%)" in text and "POST_BATCH_MAX" in text
