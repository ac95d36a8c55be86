"""RESULTS.md's network section, from bench/results/network.json (bench/network/)."""

from __future__ import annotations

from typing import Any

from bench.paths import RESULTS_MD
from bench.report.markdown import f0, f2, publish_section, table
from bench.report.runs import titled

TITLE = "## A network between the tiers: PostgreSQL and Redis a round trip away"


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}x" if peer > 0 else "-"


def stack_rows(run: dict[str, Any]) -> list[list[str]]:
    stacks = run["stacks"]
    ours = stacks.get("ours", {})
    rows = []
    for path in ("hit", "miss", "bypass", "post"):
        if path not in ours:
            continue
        mine = ours[path]
        cells = [path, f"{f0(mine['max_rps'])} / {f0(mine['capacity_rps'])} / {f0(mine['capacity_loose_rps'])}",
                 f2(mine.get("relay_us_per_request", float("nan")))]
        for name, curves in stacks.items():
            if name == "ours":
                continue
            c = curves.get(path)
            cells.append("" if not c else f"{f0(c['max_rps'])} / {f0(c['capacity_rps'])} / {f0(c['capacity_loose_rps'])} "
                         f"({' / '.join(ratio(mine[k], c[k]) for k in ('max_rps', 'capacity_rps', 'capacity_loose_rps'))})")
        rows.append(cells)
    return rows


def ablation_rows(run: dict[str, Any]) -> list[list[str]]:
    rows, base = [], run["ablation"].get("every tuning on", {})
    for label, paths in run["ablation"].items():
        cells = [label]
        for path in ("hit", "miss", "post"):
            r = paths.get(path)
            reference = base.get(path) if not label.startswith("refill storm, single-flight off") else \
                run["ablation"]["refill storm, single-flight on"].get(path)
            if r is None:
                cells.append("")
            elif reference is None or reference is r:
                cells.append(f0(r["rps"]))
            else:
                cells.append(f"{f0(r['rps'])} ({r['rps'] / reference['rps']:.2f}x)")
        rows.append(cells)
    return rows


def problems(run: dict[str, Any]) -> list[str]:
    """What makes a run at one RTT worthless: a round trip shorter than set (the relay did not
    delay), or far longer (the relay or the host is in the way), or a stack answering errors."""
    out = []
    for server, ms in run["measured"].items():
        if not run["rtt_ms"] <= ms <= run["rtt_ms"] + max(1.0, run["rtt_ms"]):
            out.append(f"RTT {run['rtt_ms']:g} ms: {server.removesuffix('_ms')} answered in {ms:.3f} ms")
    for name, paths in run["stacks"].items():
        for path, c in paths.items():
            errors = sum(p["non_2xx"] + p["transport_errors"] for p in c["points"] if p["held"])
            if errors:
                out.append(f"RTT {run['rtt_ms']:g} ms: {name} {path} answered {errors} errors at rates it held")
    return out


def section(result: dict[str, Any]) -> list[str]:
    plan = result["plan"]
    out = [titled(TITLE, result), "",
           "`make bench-network` (bench/network/): the bench stack's PostgreSQL and Redis stopped on the "
           "machine and started again on a test host of their own, a network namespace on a bridge linked by "
           "veth (ops/hosts.py). This kernel has no netem qdisc, so the delay is a relay of the project's own "
           "on that host (bench/network/relay.c, C, epoll, one thread) holding every chunk half the RTT in each "
           f"direction. The relay runs on CPU {result['facts'].get('relay_cpu')}, the load generator's, off the "
           "server's core; its CPU per request is shown (relay µs), not subtracted. The service and the peers run "
           "on the machine, one process on the server CPU, as in the sections above. Each cell: the maximum under "
           f"wrk (64 connections) / the capacity at the SLO (p99 <= {plan['slo_ms']:g} ms) / at "
           f"{plan.get('loose_factor', 5):g}x the SLO (open loop, rates at "
           f"{', '.join(f'{f:.0%}' for f in plan['fractions'])} of the maximum, {plan['seconds']:g} s each), "
           "req/s; for a peer, (ours / peer) for each.", ""]
    for key, run in sorted(result["rtts"].items(), key=lambda kv: float(kv[0])):
        m = run["measured"]
        names = [n for n in run["stacks"] if n != "ours"]
        out += [f"**RTT {float(key):g} ms** (measured at {run.get('commit', 'an unrecorded commit')}: SELECT 1 "
                f"{m['postgres_ms']:.3f} ms, PING {m['redis_ms']:.3f} ms, median of 50)", "",
                table(["path", "ours", "relay µs", *names], stack_rows(run)), "",
                "The tunings a network makes matter, switched off in turn (wrk maximum, req/s, and against "
                "every tuning on; single-flight off against single-flight on, both under a refill storm: "
                "1 s cache TTL, no in-process cache):", "",
                table(["configuration", "hit", "miss", "post"], ablation_rows(run)), ""]
    return out


def publish(result: dict[str, Any]) -> None:
    publish_section(RESULTS_MD, TITLE, section(result))
