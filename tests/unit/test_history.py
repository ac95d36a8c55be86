from pathlib import Path
from typing import Any

from bench.history import append, commits, read_history, records, spread
from bench.report.history import moves, points, section
from service.settings import ROOT

REF = "r" * 40
MACHINE = {"cpu": "cpu x", "cores": "2", "memory": "1 GiB", "os": "linux"}


def row(sha: str, date: str, path: str, ratio: float, **extra: Any) -> dict[str, Any]:
    return {"commit": sha, "date": date, "subject": f"subject of {sha[:4]}", "reference": REF, "path": path,
            "status": "measured", "ratio": ratio, "server_us": 100 / ratio, "machine": MACHINE, **extra}


def test_spread_visits_every_commit_once_ends_first_then_middles() -> None:
    for n in range(0, 40):
        order = spread(n)
        assert sorted(order) == list(range(n))
    assert spread(9)[:5] == [0, 8, 4, 2, 6]


def test_a_range_starts_at_the_commit_named_and_lists_oldest_first() -> None:
    every = commits("..HEAD")
    assert len(every) > 10
    tail = commits(f"{every[-5]}..HEAD")
    assert tail == every[-5:]
    assert commits(f"{every[0][:10]},{every[3][:10]}") == [every[0], every[3]]


def test_a_step_beyond_the_threshold_is_a_move_and_noise_is_not() -> None:
    rows = [row("a" * 40, "2026-01-01", "post", 1.00), row("b" * 40, "2026-01-02", "post", 1.05),
            row("c" * 40, "2026-01-03", "post", 0.80), row("d" * 40, "2026-01-04", "post", 0.82)]
    series = points(rows, REF, "post")
    assert [p.commit[:1] for p in series] == ["a", "b", "c", "d"]
    found = moves(series, 0.10)
    assert [(a.commit[:1], b.commit[:1]) for a, b in found] == [("b", "c")]


def test_repeated_runs_of_a_commit_count_once_at_their_median() -> None:
    rows = [row("a" * 40, "2026-01-01", "hit", r) for r in (0.9, 1.0, 1.3)]
    rows.append(row("a" * 40, "2026-01-01", "hit", 3.0, reference="other"))
    [p] = points(rows, REF, "hit")
    assert p.ratio == 1.0 and p.runs == 3


def test_a_commit_that_cannot_run_is_recorded_per_path_and_named_in_the_section(tmp_path: Path) -> None:
    about = {"commit": "e" * 40, "date": "2026-01-05", "subject": "broken"}
    outcome = {"status": "cannot run", "reason": "no `python -m service run`"}
    failed = records(about, REF, outcome, "test", 3, 2)
    assert {r["path"] for r in failed} == {"hit", "miss", "bypass", "post"}
    assert all(r["status"] == "cannot run" for r in failed)
    file = tmp_path / "h.jsonl"
    append(failed, file)
    append([row("a" * 40, "2026-01-01", p, 1.0) for p in ("hit", "miss", "bypass", "post")], file)
    back = read_history(file)
    assert len(back) == 8
    text = "\n".join(section(back, REF))
    assert "1 commits measured, 1 could not run" in text
    assert "`eeeeeeeeee` (no `python -m service run`)" in text


def test_the_moves_table_names_the_commit_and_keeps_microseconds_to_their_machine() -> None:
    other = {**MACHINE, "cpu": "cpu y"}
    rows = [row("a" * 40, "2026-01-01", "miss", 1.0), row("b" * 40, "2026-01-02", "miss", 0.5),
            row("c" * 40, "2026-01-03", "miss", 1.0, machine=other)]
    text = "\n".join(section(rows, REF))
    expected = ("| miss | `bbbbbbbbbb` 2026-01-02 | 1.00 → 0.50 | -50% | 100 → 200 (cpu x (2 cores)) "
                "| subject of bbbb |")
    assert expected in text
    assert "(different machines)" in text


def test_the_committed_history_has_records_of_every_gated_path() -> None:
    rows = read_history(ROOT / "bench" / "results" / "history.jsonl")
    measured = [r for r in rows if r["status"] == "measured"]
    assert {r["path"] for r in measured} == {"hit", "miss", "bypass", "post"}
    assert all(r["ratio"] > 0 and r["server_us"] > 0 and r["machine"]["cpu"] for r in measured)
