"""make bench SECTION=<name>: one part of make bench measured again, every other kept as
bench/results has it, then RESULTS.md and its plots written again from them. Each section's
heading names the commit it was measured at, and says so where service/ has changed since.

    python -m bench.redo <section>      (python -m bench.redo --list: the sections)
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.load import PARTS
from service.settings import ROOT

PY = sys.executable
MICRO = [PY, "-m", "pytest", "bench/test_micro.py", "-q", "-p", "no:cacheprovider",
         "--benchmark-columns=median,iqr,rounds", "--benchmark-name=short", "--benchmark-sort=name",
         "--benchmark-json=bench/results/micro.json"]
# What each part runs, as make bench runs it (the Makefile's bench target).
SECTIONS: dict[str, list[list[str]]] = {
    **{part.replace("_", "-"): [[PY, "-m", "bench.load", "--only", part]] for part in PARTS},
    "instances": [[PY, "-m", "bench.instances"]],
    "curves": [[PY, "-m", "bench.curves"]],
    "network": [[PY, "-m", "bench.network"]],
    "profile": [[PY, "-m", "bench.profile"]],
    "micro": [MICRO],
    "history": [[PY, "-m", "bench.history", "--worktree"]],
}
REPORT = [PY, "-m", "bench.report"]


def commands(section: str) -> list[list[str]]:
    """The section's runs, then the report; KeyError naming the sections for an unknown one."""
    if section not in SECTIONS:
        raise KeyError(f"no section {section!r}: one of {', '.join(SECTIONS)}")
    return [*SECTIONS[section], REPORT]


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help", "--list"):
        print(__doc__.strip() + "\n\nsections: " + ", ".join(SECTIONS))
        sys.exit(0 if len(sys.argv) == 2 else 2)
    try:
        steps = commands(sys.argv[1])
    except KeyError as exc:
        sys.exit(str(exc.args[0]))
    env = {**os.environ, "BENCH_QUICK": "0"}
    for step in steps:
        print("$ " + " ".join(step[1:]), flush=True)
        done = subprocess.run(step, cwd=ROOT, env=env, check=False)
        if done.returncode:
            sys.exit(done.returncode)


if __name__ == "__main__":
    main()
