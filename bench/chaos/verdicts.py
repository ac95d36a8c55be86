"""The chaos run's accounting and verdicts, as functions of what the load recorded and what landed:
per phase (the fault a request began in) and after healing."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

from bench.chaos.faults import CUTS, DATABASE_DOWN
from bench.chaos.load import MIN_SUCCESSES, Phase, Read, Write
from service.errors import WRITE_UNKNOWN_LOGGED

ByTag = dict[str, list[Write]]
RECOVERY_S = 2.0  # from healing to the first acknowledged write and successful read after it
ANSWERS = {"write": {"201", "503"}, "read": {"200", "503"}}  # what the load may be answered


def phase_of(phases: list[Phase], t: float) -> int:
    """The index of the phase a moment falls in (the last one after it ended)."""
    for i, phase in enumerate(phases):
        if phase.start <= t < (phase.end or float("inf")):
            return i
    return len(phases) - 1


def acked_by_tag(writes: list[Write]) -> ByTag:
    acked: ByTag = collections.defaultdict(list)
    for w in writes:
        if w.outcome == "acked":
            for tag in w.tags:
                acked[tag].append(w)
    return acked


def missed(read: Read, acked: ByTag) -> list[Write]:
    """Writes acknowledged before this read began, yet missing from it (or from its total)."""
    if read.status != "200":
        return []
    before = [w for w in acked[read.tag] if w.end < read.start]
    floor = min(read.ids) if len(read.ids) == 100 else 0  # a full page: only newer ids must show
    shown = set(read.ids)
    missing = [w for w in before if w.tweet_id is not None and w.tweet_id >= floor and w.tweet_id not in shown]
    if read.total < len(before) and not missing:
        return before[-1:]
    return missing


def recovery(phase: Phase, ws: list[Write], rs: list[Read]) -> float | None:
    """Seconds from healing to the first acknowledged write and successful read begun after it."""
    if not phase.healed:
        return None
    ok_w = [w.end - phase.healed for w in ws if w.start >= phase.healed and w.outcome == "acked"]
    ok_r = [r.end - phase.healed for r in rs if r.start >= phase.healed and r.status == "200"]
    if not ok_w or not ok_r:
        return None  # never recovered within the phase
    return round(max(min(ok_w), min(ok_r)), 2)


def phase_row(phase: Phase, ws: list[Write], rs: list[Read], landed: dict[str, int], acked: ByTag) -> dict[str, Any]:
    """One phase's counts: the writes and reads that began in it."""
    heal = phase.healed or phase.start
    unsure = [w for w in ws if w.outcome == "indeterminate"]
    unavailable = [w for w in ws if w.outcome == "unavailable"]
    stale = [(r, missed(r, acked)) for r in rs]
    stale = [(r, m) for r, m in stale if m]
    both: list[Write | Read] = [*ws, *rs]
    return {
        "phase": phase.name,
        "seconds": round((phase.end or phase.start) - phase.start, 1),
        "writes": len(ws), "acked": sum(1 for w in ws if w.outcome == "acked"),
        "lost": sum(1 for w in ws if w.outcome == "acked" and w.marker not in landed),
        "refused": sum(1 for w in ws if w.outcome == "refused"),
        "refused_landed": sum(1 for w in ws if w.outcome == "refused" and w.marker in landed),
        "unavailable": len(unavailable),
        "unavailable_landed": sum(1 for w in unavailable if w.marker in landed),
        "indeterminate": len(unsure),
        "indeterminate_landed": sum(1 for w in unsure if w.marker in landed),
        "reads": len(rs),
        "reads_ok": sum(1 for r in rs if r.status == "200"),
        "stale_reads": len(stale),
        "stale_by_cache": dict(collections.Counter(r.cache for r, _ in stale)),
        "stale_examples": [
            {"read_s": round(r.start - heal, 3), "cache": r.cache, "reader": r.worker,
             "missed": [(round(w.end - heal, 3), w.worker) for w in m][:3]} for r, m in stale][:8],
        "write_statuses": dict(collections.Counter(w.status for w in ws)),
        "read_statuses": dict(collections.Counter(r.status for r in rs)),
        "status_500": sum(1 for x in both if x.status == "500"),
        "status_503": sum(1 for x in both if x.status == "503"),
        "missing_retry_after": sum(1 for x in both if not x.retry_after),
        "recover_s": recovery(phase, ws, rs),
    }


def final_check(writes: list[Write], tags: list[str], final: dict[str, Any]) -> dict[str, int]:
    """After healing: every acknowledged tweet in PostgreSQL and in its tags' searches, and each
    tag's search and total equal to PostgreSQL's."""
    landed, db_ids, searched, totals = final["landed"], final["db_ids"], final["searched"], final["totals"]
    acked = [w for w in writes if w.outcome == "acked"]
    return {
        "acked": len(acked),
        "lost": sum(1 for w in acked if w.marker not in landed),
        "missing_from_search": sum(1 for w in acked for tag in w.tags if w.tweet_id not in searched[tag]),
        "search_differs_from_db": sum(1 for tag in tags if searched[tag] != db_ids[tag]),
        "total_differs_from_db": sum(1 for tag in tags if totals[tag] != len(db_ids[tag])),
    }


def unexpected_503s(phases: list[Phase], spans: list[Write | Read]) -> collections.Counter[str]:
    """503s answered while PostgreSQL was up, by phase. A 503 is expected while it is down: from
    the kill until RECOVERY_S after it is back (pooled connections, and PgBouncer's, are replaced
    on first use). Judged by each request's own span, so one that began just before the kill is
    not blamed on the phase before."""
    down = [(ph.start, ph.healed + RECOVERY_S) for ph in phases if ph.name in DATABASE_DOWN]
    return collections.Counter(phases[phase_of(phases, x.start)].name for x in spans
                               if x.status == "503" and not any(a <= x.end and x.start <= b for a, b in down))


def unexpected_cuts(phases: list[Phase], spans: list[Write | Read]) -> collections.Counter[str]:
    """Requests with no answer (a transport error: reset, refused, timed out), by phase, except
    those in flight while a fault cut the service's own connections (a worker killed, SIGTERM):
    from its start until a second after it was healed."""
    cuts = [(ph.start, ph.healed + 1.0) for ph in phases if ph.name in CUTS]
    return collections.Counter(phases[phase_of(phases, x.start)].name for x in spans
                               if not x.status.isdigit() and not any(a <= x.end and x.start <= b for a, b in cuts))


def row_problems(row: dict[str, Any]) -> list[str]:
    """Every count of a phase's row judged: what it may be, given the fault."""
    name, out = row["phase"], []
    for key, says in (("lost", "acknowledged writes lost"), ("stale_reads", "stale reads"),
                      ("status_500", "500s"), ("missing_retry_after", "503s without Retry-After"),
                      ("refused_landed", "refused writes written anyway"),
                      ("unavailable_landed", "writes answered 503 (not written) written anyway")):
        if row[key]:
            out.append(f"{name}: {row[key]} {says}")
    for kind in ANSWERS:
        statuses = {s: n for s, n in row[f"{kind}_statuses"].items() if s.isdigit() and s not in ANSWERS[kind]}
        if statuses:
            out.append(f"{name}: {kind}s answered {statuses}")
    if row["acked"] < MIN_SUCCESSES or row["reads_ok"] < MIN_SUCCESSES:
        out.append(f"{name}: only {row['acked']} acknowledged writes and {row['reads_ok']} "
                   f"successful reads (at least {MIN_SUCCESSES} of each)")
    if name != "steady" and (row["recover_s"] is None or not row["recover_s"] <= RECOVERY_S):
        out.append(f"{name}: recovered in {row['recover_s']} s after healing (at most {RECOVERY_S:g})")
    return out


def problems(rows: list[dict[str, Any]], final: dict[str, int], unexpected: collections.Counter[str],
             cut: collections.Counter[str]) -> list[str]:
    out = [f"{name}: {n} answers 503 while PostgreSQL was up" for name, n in unexpected.items()]
    out += [f"{name}: {n} requests got no answer while no fault cut the service's connections"
            for name, n in cut.items()]
    for row in rows:
        out += row_problems(row)
    for key in ("lost", "missing_from_search", "search_differs_from_db", "total_differs_from_db"):
        if final[key]:
            out.append(f"after healing: {key} = {final[key]}")
    return out


def report(phases: list[Phase], writes: list[Write], reads: list[Read], tags: list[str],
           final: dict[str, Any]) -> dict[str, Any]:
    """Every phase's row, the state after healing, and the targets missed."""
    acked = acked_by_tag(writes)
    rows = [phase_row(phase, [w for w in writes if phase_of(phases, w.start) == i],
                      [r for r in reads if phase_of(phases, r.start) == i], final["landed"], acked)
            for i, phase in enumerate(phases)]
    after = final_check(writes, tags, final)
    return {"phases": rows, "final": after,
            "problems": problems(rows, after, unexpected_503s(phases, [*writes, *reads]),
                                 unexpected_cuts(phases, [*writes, *reads]))}


def unknown_causes(path: Path) -> collections.Counter[str]:
    """What cut off each post answered 503 "may have landed", as the service logged it, counted by
    the error's text (service/timeline.py logs one line each)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        _, found, cause = line.partition(WRITE_UNKNOWN_LOGGED)
        if found:
            counts[cause.strip()[:200]] += 1
    return counts


def tracebacks(path: Path) -> list[str]:
    """Each traceback in a log, from "Traceback" to its exception line. Two workers write to
    the log at once, so a block is recognised by what it holds, not by the line before it."""
    lines = path.read_text(errors="replace").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and lines[j].startswith(" "):
                j += 1
            blocks.append("\n".join(lines[i: j + 1]))
    return blocks


# Sanic's main process at SIGTERM: its signal handler runs in the middle of a call the main
# thread is making on the worker-state Manager's connection and makes one of its own, and the two
# replies cross ("'NoneType' object is not a mapping" in the handler, "'str' object has no
# attribute 'get'" in the loop that waits for the workers). Its workers have stopped by then.
SANIC_MANAGER_RACE = ("sanic/worker/process.py", "sanic/mixins/startup.py")


def traceback_kind(block: str) -> str:
    """asyncpg: its pool logging a failed reconnect while PostgreSQL is down (noise). shutdown: a
    worker stopped by Sanic while it was still starting (KeyboardInterrupt), with its loop
    stopped under Sanic's own cleanup, or Sanic's main process racing its own signal handler
    (SANIC_MANAGER_RACE); reported, not counted (any request cut off shows as no answer in the
    table). service: anything else, which fails the run."""
    if "_maintain_min_size" in block:
        return "asyncpg"
    if block.endswith("KeyboardInterrupt") or ("sanic/server/runners.py" in block
                                               and "Event loop stopped before Future completed" in block):
        return "shutdown"
    if "/service/" not in block.replace("/service/__main__.py", "") and any(f in block for f in SANIC_MANAGER_RACE) \
            and ("shutdown_signal" in block or "_get_process_states" in block):
        return "shutdown"
    return "service"
