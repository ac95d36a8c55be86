"""Does `make bench-check` catch a slowdown that lies outside the service's code?

Two such slowdowns (and, with --costly-trigger, a third checked once), each a candidate tree of
its own (HEAD's files plus one change), measured by the check against HEAD as CI measures a change:
- migration: a new sql/ migration adding a trigger that does busy work on every insert into
  tweets, so each post costs more in PostgreSQL;
- dependency: a new requirement, a package whose import hook makes asyncpg's fetchrow do busy
  work first, as a slower release of a dependency would (the searches that read PostgreSQL and
  the posts pay it).
Before the baseline had an environment and a database of its own, both sides ran the
candidate's, and neither could be seen. Each is calibrated to make its path about 25% dearer
(0.80x the baseline's throughput), then the check runs N times on it and N times on an unchanged
copy of HEAD, alternating. Writes bench/results/injected.json and RESULTS.md's section.

    python -m bench.inject [--runs 10]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.check import THRESHOLDS, TREES, git, unpack
from bench.harness import log, prepare_stack, write_json
from bench.paths import RESULTS
from bench.report.runs import publish_detection
from service.settings import ROOT

OUT = RESULTS / "injected.json"
LAST = RESULTS / "check-injected.json"
TARGET = 1 / 1.25
SCENARIOS = {"migration": ("post", 30000), "dependency": ("bypass", 60)}  # path, first guess

TRIGGER = """-- Injected by bench/inject.py: busy work in every insert into tweets.
CREATE OR REPLACE FUNCTION inject_busy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM count(*) FROM generate_series(1, {n});
    RETURN NEW;
END $$;
CREATE TRIGGER inject_busy BEFORE INSERT ON tweets FOR EACH ROW EXECUTE FUNCTION inject_busy();
"""
# A fixed cost, not calibrated: a few milliseconds of work per inserted tweet (--costly-trigger).
COSTLY_TRIGGER_MS = 3
COSTLY = """-- Injected by bench/inject.py: a trigger that sleeps on every insert into tweets.
CREATE OR REPLACE FUNCTION inject_costly() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep({ms} / 1000.0);
    RETURN NEW;
END $$;
CREATE TRIGGER inject_costly BEFORE INSERT ON tweets FOR EACH ROW EXECUTE FUNCTION inject_costly();
"""
HOOK = """# Installed by bench/inject.py's wheel: asyncpg's fetchrow does busy work first.
import time

import asyncpg.connection

_original = asyncpg.connection.Connection.fetchrow


async def fetchrow(self, *args, **kwargs):
    end = time.perf_counter() + {us} / 1e6
    while time.perf_counter() < end:
        pass
    return await _original(self, *args, **kwargs)


asyncpg.connection.Connection.fetchrow = fetchrow
"""


def wheel(folder: Path, us: int) -> Path:
    """A pure-Python wheel whose .pth line imports the hook at every start of its environment."""
    version = f"1.0.{us}"
    files = {"slowdep_hook.py": HOOK.replace("{us}", str(us)).encode(), "slowdep.pth": b"import slowdep_hook\n",
             f"slowdep-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: slowdep\nVersion: {version}\n".encode(),
             f"slowdep-{version}.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: bench.inject\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = f"slowdep-{version}.dist-info/RECORD"
    lines = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
             f"{len(data)}" for name, data in files.items()]
    files[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    path = folder / f"slowdep-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def candidate(base: Path, scenario: str, amount: int) -> Path:
    """HEAD's files plus the scenario's change, in a tree of its own."""
    tree = TREES / f"{base.name}-{scenario}-{amount}"
    if not (tree / ".complete").exists():
        shutil.rmtree(tree, ignore_errors=True)
        shutil.copytree(base, tree)
        if scenario == "migration":
            (tree / "sql" / "900_inject_busy_trigger.sql").write_text(TRIGGER.replace("{n}", str(amount)))
        elif scenario == "costly":
            (tree / "sql" / "900_inject_costly_trigger.sql").write_text(COSTLY.replace("{ms}", str(amount)))
        elif scenario == "dependency":
            built = wheel(tree, amount)
            with (tree / "requirements.txt").open("a") as f:
                f.write(f"slowdep @ file://{built}\n")
        (tree / ".complete").touch()
    return tree


def check(tree: Path, path: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.check", "--baseline", "HEAD", "--candidate-tree", str(tree),
           "--paths", path, "--output", str(LAST.relative_to(ROOT))]
    started = time.time()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the check could not measure:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(LAST.read_text())["paths"][path]
    return {"ratio": data["ratio"], "failed": data["failed"], "seconds": time.time() - started}


def calibrate(base: Path, scenario: str) -> tuple[int, float]:
    """The amount (loop iterations, or microseconds) that makes the path run at about 0.80x."""
    path, amount = SCENARIOS[scenario]
    effect = 1.0
    for attempt in range(5):
        effect = check(candidate(base, scenario, amount), path)["ratio"]
        log(f"  {scenario} calibration {attempt + 1}: {amount} -> {path} {effect:.3f}x")
        if abs(effect - TARGET) <= 0.03:
            break
        extra = max(1 / min(effect, 0.99) - 1, 0.02)  # the extra time per request it caused
        amount = max(1, round(amount * min(4.0, max(0.25, 0.25 / extra))))
    return amount, effect


def costly_trigger(base: Path) -> None:
    """One check of a migration adding a COSTLY_TRIGGER_MS trigger per inserted tweet, beside one
    of an unchanged copy: it must fail on post, in about the clean check's time (the seed loads
    with triggers off, so only the posts pay). Kept in injected.json; RESULTS.md's section redrawn."""
    clean = check(candidate(base, "clean", 0), "post")
    costly = check(candidate(base, "costly", COSTLY_TRIGGER_MS), "post")
    injected = json.loads(OUT.read_text())
    injected["costly_trigger"] = {
        "commit": git("rev-parse", "HEAD"), "trigger_ms": COSTLY_TRIGGER_MS, "clean": clean, "costly": costly,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    write_json(OUT, injected)
    publish_detection(json.loads((RESULTS / "detection.json").read_text()), injected)
    log(f"costly trigger: post {costly['ratio']:.3f}x ({'caught' if costly['failed'] else 'MISSED'}) in "
        f"{costly['seconds']:.0f} s; clean {clean['ratio']:.3f}x in {clean['seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--costly-trigger", action="store_true",
                        help=f"only: one check of a {COSTLY_TRIGGER_MS} ms trigger per tweet beside a clean one")
    args = parser.parse_args()
    if git("status", "--porcelain", "--untracked-files=no"):
        sys.exit("bench.inject measures trees made from HEAD against HEAD: commit or stash your changes first")
    started = time.time()
    prepare_stack()
    base = unpack(git("rev-parse", "HEAD"))
    if args.costly_trigger:
        return costly_trigger(base)
    result: dict[str, Any] = {"runs": args.runs, "commit": git("rev-parse", "HEAD"), "scenarios": {},
                              "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for scenario in args.scenarios.split(","):
        path = SCENARIOS[scenario][0]
        log(f"calibrating the {scenario} slowdown on {path}")
        amount, effect = calibrate(base, scenario)
        slow, clean = [], []
        for i in range(args.runs):  # alternate, so drift over time affects both alike
            clean.append(check(candidate(base, "clean", 0), path))
            slow.append(check(candidate(base, scenario, amount), path))
            log(f"  run {i + 1}/{args.runs}: clean {clean[-1]['ratio']:.3f}, {scenario} {slow[-1]['ratio']:.3f}"
                f"{' (caught)' if slow[-1]['failed'] else ' (MISSED)'}")
        result["scenarios"][scenario] = {
            "path": path, "amount": amount, "unit": "loop iterations" if scenario == "migration" else "µs",
            "calibrated_ratio": effect, "allowed": 1 - THRESHOLDS[path],
            "caught": sum(r["failed"] for r in slow), "false_alarms": sum(r["failed"] for r in clean),
            "slow_ratios": [r["ratio"] for r in slow], "clean_ratios": [r["ratio"] for r in clean]}
    result["elapsed_s"] = time.time() - started
    if OUT.exists() and (kept := json.loads(OUT.read_text()).get("costly_trigger")):
        result["costly_trigger"] = kept  # measured apart (--costly-trigger)
    write_json(OUT, result)
    publish_detection(json.loads((RESULTS / "detection.json").read_text()), result)
    for scenario, v in result["scenarios"].items():
        log(f"{scenario}: caught {v['caught']}/{args.runs}, false alarms {v['false_alarms']}/{args.runs}")


if __name__ == "__main__":
    main()
