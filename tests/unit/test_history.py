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


def test_a_change_of_level_is_a_move_and_a_lone_noisy_point_is_not() -> None:
    ratios = [1.00, 1.02, 0.98, 1.25, 1.00, 0.99, 0.80, 0.82, 0.79, 0.81]  # one outlier, then a step
    rows = [row(f"{i:02d}" * 20, f"2026-01-{i + 1:02d}", "post", r) for i, r in enumerate(ratios)]
    series = points(rows, REF, "post")
    assert [p.commit[:2] for p in series] == [f"{i:02d}" for i in range(10)]
    found = moves(series, 0.10)
    assert [(m.before.commit[:2], m.after.commit[:2]) for m in found] == [("05", "06")]
    assert abs(found[0].level_before - 1.0) < 0.011 and abs(found[0].level_after - 0.81) < 0.011


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
    assert "1 commits measured, 1 could not run;" in text
    assert "3 of the 5 commits up to HEAD not measured yet" in "\n".join(section(back, REF, landed=5))
    assert "`eeeeeeeeee` (no `python -m service run`)" in text


def test_the_moves_table_names_the_commit_and_keeps_microseconds_to_their_machine() -> None:
    other = {**MACHINE, "cpu": "cpu y"}
    rows = [row("a" * 40, "2026-01-01", "miss", 1.0), row("b" * 40, "2026-01-02", "miss", 0.5),
            row("c" * 40, "2026-01-03", "miss", 0.5)]
    text = "\n".join(section(rows, REF))
    expected = ("| miss | `bbbbbbbbbb` 2026-01-02 | 1.00 → 0.50 | -50% | 100 → 200 (cpu x (2 cores)) "
                "| subject of bbbb |")
    assert expected in text
    rows[1]["machine"] = other
    assert "(different machines)" in "\n".join(section(rows, REF))


def test_the_committed_history_has_records_of_every_gated_path() -> None:
    rows = read_history(ROOT / "bench" / "results" / "history.jsonl")
    measured = [r for r in rows if r["status"] == "measured"]
    assert {r["path"] for r in measured} == {"hit", "miss", "bypass", "post"}
    assert all(r["ratio"] > 0 and r["server_us"] > 0 and r["machine"]["cpu"] for r in measured)
