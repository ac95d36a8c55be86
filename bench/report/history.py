"""Performance over commits (bench/history.py's records): a line per gated path, the commits where
a path moved by more than the CI check's threshold marked and named, and RESULTS.md's section."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.check import PATHS
from bench.check import THRESHOLDS as NOISE  # a move: more than the CI check lets a path fall
from bench.paths import PLOTS, RESULTS_MD
from bench.report.markdown import f2, publish_section, table
from service.settings import ROOT

TITLE = "## Performance over commits"
PLOT = "history.png"


@dataclass(frozen=True)
class Point:
    commit: str
    date: str
    subject: str
    ratio: float  # median over this commit's records for the path
    server_us: float
    runs: int
    machine: str  # where its µs were measured ("several machines" when its runs differ)


def points(rows: list[dict[str, Any]], reference: str, path: str) -> list[Point]:
    """The measured commits of one path against one reference, oldest first (the working tree's
    runs, from make bench, keep their own place: after their HEAD commit)."""
    by_commit: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["reference"] == reference and row["path"] == path and row["status"] == "measured":
            key = row["commit"] + (" +worktree" if row.get("worktree") else "")
            by_commit.setdefault(key, []).append(row)
    out = [Point(key[:10] + ("+" if "+worktree" in key else ""), runs[0]["date"], runs[0]["subject"],
                 statistics.median(r["ratio"] for r in runs), statistics.median(r["server_us"] for r in runs),
                 len(runs), machine_of(runs)) for key, runs in by_commit.items()]
    return sorted(out, key=lambda p: (p.date, p.commit.endswith("+")))


def machine_of(rows: list[dict[str, Any]]) -> str:
    names = {f"{r['machine']['cpu']} ({r['machine']['cores']} cores)" for r in rows}
    return names.pop() if len(names) == 1 else "several machines"


def server_us_change(a: Point, b: Point) -> str:
    """Absolute µs only beside the one machine both were measured on."""
    if a.machine != b.machine or a.machine == "several machines":
        return "(different machines)"
    return f"{a.server_us:,.0f} → {b.server_us:,.0f} ({a.machine})"


@dataclass(frozen=True)
class Move:
    before: Point  # the last commit on the old level
    after: Point  # the first commit on the new one
    level_before: float  # the median ratio of up to WINDOW commits up to `before`
    level_after: float  # and of up to WINDOW commits from `after` on


WINDOW = 3  # a few rounds per commit are noisy: a move is a change of level, not of one point


def moves(series: list[Point], noise: float, window: int = WINDOW) -> list[Move]:
    """Where a path's level moved by more than the noise (relative): the median of the `window`
    commits from a point on against the median of the `window` before it. A step spreads over
    the points around it, so of each run of such points the largest step is kept."""
    steps = []
    for i in range(1, len(series)):
        before = statistics.median(p.ratio for p in series[max(0, i - window):i])
        after = statistics.median(p.ratio for p in series[i:i + window])
        steps.append((i, before, after, abs(after / before - 1) > noise))
    out: list[Move] = []
    run: list[tuple[int, float, float, bool]] = []
    for step in [*steps, (len(series), 1.0, 1.0, False)]:
        if step[3]:
            run.append(step)
            continue
        if run:
            i, before, after, _ = max(run, key=lambda s: abs(s[2] / s[1] - 1))
            out.append(Move(series[i - 1], series[i], before, after))
            run = []
    return out


def plot(rows: list[dict[str, Any]], reference: str, folder: Path = PLOTS) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PATHS), 1, figsize=(10, 2.1 * len(PATHS)), sharex=True)
    for ax, path in zip(axes, PATHS, strict=True):
        series = points(rows, reference, path)
        xs = list(range(len(series)))
        ax.plot(xs, [p.ratio for p in series], marker=".", color="#4c72b0", linewidth=1)
        ax.axhline(1.0, color="#999999", linewidth=0.8, linestyle="--")
        for move in moves(series, NOISE[path]):
            b = move.after
            i = series.index(b)
            ax.plot([i], [b.ratio], marker="o", color="#c44e52", markersize=7, fillstyle="none")
            ax.annotate(b.commit[:7], (i, b.ratio), textcoords="offset points", xytext=(3, 4), fontsize=7,
                        color="#c44e52")
        ax.set_ylabel(f"{path}\n/ reference", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    last = points(rows, reference, PATHS[0])
    axes[-1].set_xticks(range(len(last)), [p.commit[:7] for p in last], rotation=90, fontsize=6)
    axes[0].set_title(f"Throughput over commits, as a ratio to {reference[:10]} measured beside each "
                      "(circled: moved by more than the check's threshold)", fontsize=9)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / PLOT, dpi=110)
    plt.close(fig)
    return PLOT


def landed() -> int:
    """Commits up to HEAD (the history's whole range)."""
    out = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                         check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def section(rows: list[dict[str, Any]], reference: str, plot_dir: str = "bench/plots",
            landed: int = 0) -> list[str]:
    mine = [r for r in rows if r["reference"] == reference]
    commits = {r["commit"] for r in mine if not r.get("worktree")}
    broken = {r["commit"]: r for r in mine if r["status"] != "measured" and not r.get("worktree")}
    measured = commits - set(broken)
    machines = sorted({f"{r['machine']['cpu']} ({r['machine']['cores']} cores)" for r in mine})
    out = [TITLE, "",
           f"Each commit measured beside the reference commit {reference[:12]} (the CI check's baseline) on "
           "the same machine, its servers and the reference's pinned to one CPU and loaded at the same time "
           "by wrk on the other, path by path, round after round, as the CI check measures (bench/history.py; "
           "its own environment and database). A point is the commit's throughput as a ratio to the "
           "reference's in the same rounds (the median of the rounds): it compares across machines and runs. "
           f"{len(measured)} commits measured, {len(broken)} could not run"
           + (f", {landed - len(commits)} of the {landed} commits up to HEAD not measured yet (the runs so far "
              "stopped at their time budget; the next goes on with them)" if landed > len(commits) else "")
           + "; records in "
           "bench/results/history.jsonl (`make bench-history` adds commits; `make bench` adds its own run, "
           "marked + after its HEAD commit). Machines: " + "; ".join(machines) + ".", "",
           f"![performance over commits]({plot_dir}/{PLOT})", "",
           "How to read it: a flat line is a path that kept its speed; a step is a commit that moved it. A "
           "circled point starts a new level: the median of it and the next two measured commits differs "
           "from the median of the three before by more than the CI check's threshold "
           f"({', '.join(f'{p} {NOISE[p]:.0%}' for p in PATHS)}; one point's own few rounds are noisier "
           "than that, so a lone point off the line is not marked). The commits between two measured ones "
           "are not drawn, so a step lies somewhere between them (measure that range: `make bench-history "
           "REVS=<a>..<b>`). Ratios above 1 are faster than the reference.", ""]
    rows_out = []
    for path in PATHS:
        for m in moves(points(rows, reference, path), NOISE[path]):
            a, b = m.before, m.after
            rows_out.append([path, f"`{b.commit}` {b.date[:10]}", f"{f2(m.level_before)} → {f2(m.level_after)}",
                             f"{m.level_after / m.level_before - 1:+.0%}", server_us_change(a, b),
                             b.subject[:110].replace("|", "/")])
    if rows_out:
        out += ["The moves (server CPU µs per request, with the machine it was measured on):", "",
                table(["path", "commit", "level (ratio)", "change", "server µs", "subject"], rows_out), ""]
    if broken:
        out += ["Commits that could not run: " + "; ".join(
            f"`{sha[:10]}` ({r['reason'].splitlines()[0][:100]})" for sha, r in sorted(
                broken.items(), key=lambda kv: kv[1]["date"])) + "."]
    return out


def publish(rows: list[dict[str, Any]], reference: str) -> None:
    plot(rows, reference)
    publish_section(RESULTS_MD, TITLE, section(rows, reference, landed=landed()))
