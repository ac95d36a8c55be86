"""Where each path spends the server's CPU: py-spy samples the one server worker under wrk load.

For each path a fresh one-worker server pinned like the load runs (bypass with the cache off), a
warm-up, then wrk and py-spy (sampling without pausing the worker, on the load CPU) together. Only
samples where the worker runs count (py-spy leaves out idle threads), so the shares are shares of
the worker's CPU. Time in C code (uvloop, httptools, asyncpg's protocol, hiredis, orjson) counts
towards the Python frame that called it. Writes bench/results/profile.json (read by bench/report.py)
the collapsed stacks of each path under bench/results/profiles/, and a flame graph of each path
(bench/plots/flame-<path>.svg, committed beside RESULTS.md; bench/report/flame.py draws it).

    python -m bench.profile [--quick]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import facts
from bench.harness import (
    Server,
    bench_settings,
    children_connected_to,
    cpus,
    flush_cache,
    log,
    prepare_stack,
    token,
    write_json,
    wrk,
)
from bench.paths import PLOTS, RESULTS
from bench.report import flame
from service.settings import ROOT

PATHS: dict[str, dict[str, str]] = {"hit": {}, "miss": {}, "bypass": {"CACHE_ENABLED": "false"}, "post": {}}
# A leaf frame's file decides its part; the first pattern that matches wins. Sanic compiles some
# of its request handling at start-up: those frames carry their function's name as their file.
# uvloop runs callbacks and socket I/O in C under Sanic's _run_server_forever.
PARTS = [("database driver (asyncpg)", r"^asyncpg/"), ("Redis client (redis-py, hiredis)", r"^redis/"),
         ("event loop (uvloop) and asyncio", r"runners\.py:_run_server_forever|^asyncio/"),
         ("web framework (sanic, httptools)",
          r"^sanic|^(connection_task|http1_request_header|http1_response_header|handle_request|send)$"),
         ("service code", r"^service/"), ("other", r"")]
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def parse(collapsed: str) -> collections.Counter[tuple[str, ...]]:
    """py-spy's raw output: 'frame;frame;... count' per line, outermost frame first."""
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def short(frame: str) -> str:
    """'handler (/x/site-packages/sanic/app.py:12)' -> 'handler (sanic/app.py)'."""
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/"):  # py-spy shortens most itself
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def part(frame: str) -> str:
    m = FRAME.match(short(frame))
    where = f"{m['file']}:{m['func']}" if m and m["file"].endswith("runners.py") else m["file"] if m else frame
    return next(name for name, pattern in PARTS if re.search(pattern, where))


def summarise(stacks: collections.Counter[tuple[str, ...]], top: int = 10) -> dict[str, Any]:
    total = sum(stacks.values()) or 1
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        leaf = short(stack[-1])
        own[leaf] += n
        parts[part(stack[-1])] += n
        for frame in {short(f) for f in stack if "service/" in f and "site-packages" not in f}:
            within[frame] += n
    return {"samples": total,
            "parts": {name: parts[name] / total for name, _ in PARTS if parts[name]},
            "top_own": [(frame, n / total) for frame, n in own.most_common(top)],
            "top_service": [(frame, n / total) for frame, n in within.most_common(top)]}


def profile_path(path: str, env: dict[str, str], seconds: float, warmup: float, quick: bool = False) -> dict[str, Any]:
    server_cpu, load_cpu = cpus()
    settings = bench_settings()
    with Server({**env, "WORKERS": "1"}, server_cpu) as server:
        assert server.proc is not None
        bearer = token(server.url)
        workers = children_connected_to(server.proc.pid, settings.stack_pg_port)
        if len(workers) != 1:
            raise RuntimeError(f"expected one server worker, found {sorted(workers)}")
        worker = workers.pop()
        endpoint = "cold" if path == "miss" else path
        extra = {"START": "0", "COUNT": "50000"} if path == "miss" else None
        if path == "miss":
            flush_cache()
        wrk(server, endpoint, warmup, bearer, load_cpu, script_env=extra)
        if path == "miss":
            flush_cache()
        load: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: load.update(
            wrk(server, endpoint, seconds + 2, bearer, load_cpu, script_env=extra)))
        thread.start()
        time.sleep(1)
        out = RESULTS / "profiles" / f"{path}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = (["taskset", "-c", load_cpu] if load_cpu else []) + [
            str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker), "--duration",
            str(int(seconds)), "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
        thread.join()
    stacks = parse(out.read_text())
    summary = summarise(stacks)
    graph = flame.write(stacks, f"{path}: one worker under wrk at {load['rps']:,.0f} req/s",
                        (RESULTS / "quick" if quick else PLOTS) / f"flame-{path}.svg", short, part)
    summary.update({"rps_while_sampled": load["rps"], "seconds": seconds, "settings": env or "defaults",
                    "rate_hz": 250, "flame_graph": graph.relative_to(ROOT).as_posix()})
    log(f"  profile {path:<6} {summary['samples']} samples at {load['rps']:,.0f} req/s: " + ", ".join(
        f"{name} {share:.0%}" for name, share in summary["parts"].items()))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    prepare_stack()
    results = {"commit": facts.commit(),
               "paths": {path: profile_path(path, env, 4 if args.quick else 10, 2 if args.quick else 3, args.quick)
                         for path, env in PATHS.items()}}
    write_json(RESULTS / ("profile-quick.json" if args.quick else "profile.json"), results)


if __name__ == "__main__":
    main()
