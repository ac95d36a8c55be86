"""RESULTS.md's capacity section and its latency-throughput plots, from bench/results/curves.json
(bench/curves.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.paths import PLOTS, RESULTS_MD
from bench.report.markdown import f0, f2, publish_section, table
from bench.report.plots import save
from bench.report.runs import titled
from bench.report.verdicts import peer_goal
from service.settings import ROOT

TITLE = "## Capacity at an SLO: latency against offered load (open loop)"
# Issue 33's targets: capacity at the SLO ahead of every peer on every path; hit at least this
# share of the bare protocol's maximum, the same page's bytes.
HIT_LIMIT_GOAL = 0.75


def plot(path: str, stacks: dict[str, Any], slo_ms: float, folder: Path) -> str:
    """p99 (solid) and p50 (dotted) against the offered rate, one colour per stack."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, (name, curves) in enumerate(stacks.items()):
        c = curves.get(path)
        if not c:
            continue
        xs = [p["offered_rps"] for p in c["points"]]
        colour = f"C{i}"
        ax.plot(xs, [max(p["p99_ms"], 0.01) for p in c["points"]], marker="o", ms=3, color=colour, label=name)
        ax.plot(xs, [max(p["p50_ms"], 0.01) for p in c["points"]], ls=":", color=colour)
    ax.axhline(slo_ms, color="grey", ls="--", lw=1)
    ax.text(ax.get_xlim()[0], slo_ms * 1.1, f"SLO: p99 {slo_ms:g} ms", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("offered requests/s (Poisson arrivals)")
    ax.set_ylabel("latency from when due, ms (p99 solid, p50 dotted)")
    ax.set_title(f"{path}: latency against offered load, 1 worker")
    ax.legend(fontsize=8)
    return save(fig, folder, f"curve-{path}.png")


def paths_of(result: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(path for curves in result["stacks"].values() for path in curves))


def plots(result: dict[str, Any], folder: Path) -> list[str]:
    return [plot(path, result["stacks"], result["plan"]["slo_ms"], folder) for path in paths_of(result)]


def ratio(ours: float, peer: float) -> str:
    if peer <= 0:
        return "peer held no rate" if ours > 0 else "neither held a rate"
    return f"{ours / peer:.2f}x"


def capacity_rows(stacks: dict[str, Any], paths: list[str], key: str = "capacity_rps") -> list[list[str]]:
    ours = stacks.get("ours", {})
    rows = []
    for path in paths:
        mine = ours.get(path, {}).get(key, math.nan)
        cells = [path, f0(mine)]
        for name, curves in stacks.items():
            if name in ("ours", "bare-protocol"):
                continue
            c = curves.get(path)
            cells.append("not served" if not c else f"{f0(c[key])} ({ratio(mine, c[key])})")
        rows.append(cells)
    return rows


def max_rows(stacks: dict[str, Any], paths: list[str]) -> list[list[str]]:
    return [[path, *[f0(curves[path]["max_rps"]) if path in curves else "" for curves in stacks.values()]]
            for path in paths]


def first_missed(c: dict[str, Any]) -> float | None:
    """The lowest offered rate a curve did not hold (None: it held every rate it was offered)."""
    return min((p["offered_rps"] for p in c.get("points", []) if not p["held"]), default=None)


def slo_verdict(ours: dict[str, Any], peer: dict[str, Any], name: str) -> str:
    """ahead, behind or even at the SLO. Each capacity is known only between the highest rate held and
    the lowest missed: where the trailing stack missed no rate at or below the leader's capacity (its
    first miss lies above it), the rates measured cannot tell the two apart."""
    mine, theirs = ours["capacity_rps"], peer["capacity_rps"]
    if not mine and not theirs:
        return "neither held a rate at the SLO"
    if mine == theirs:
        return "even at the SLO"
    ahead = mine > theirs
    lead, lead_name, trail, trail_name = (ours, "ours", peer, name) if ahead else (peer, name, ours, "ours")
    missed = first_missed(trail)
    verdict = "ahead at the SLO" if ahead else "behind at the SLO"
    if missed is None:  # it held every rate offered, up to 115% of its own maximum, all below the other's
        return f"{verdict} ({trail_name} held every rate it was offered, up to {f0(trail['capacity_rps'])})"
    if missed > lead["capacity_rps"]:
        return (f"even at the SLO within the rates measured ({trail_name} held {f0(trail['capacity_rps'])} and "
                f"missed {f0(missed)}; {lead_name} held {f0(lead['capacity_rps'])})")
    return verdict


def whose(name: str) -> str:
    return "our" if name == "ours" else f"{name}'s"


def even_lines(stacks: dict[str, Any], paths: list[str]) -> list[str]:
    """Why ours and a peer come out even at the SLO on a path: each one's server CPU per request at
    its maximum, and the database's and Redis's behind it (the same statements on every stack)."""
    ours, out = stacks.get("ours", {}), []
    for path in paths:
        mine = ours.get(path)
        if not mine:
            continue
        even = [name for name, curves in stacks.items() if name not in ("ours", "bare-protocol")
                and path in curves and slo_verdict(mine, curves[path], name).startswith("even at")]
        us = [(name, stacks[name][path].get("cpu_us_per_request", {})) for name in ["ours", *even]]
        if not even or not all("server" in cpu for _, cpu in us):
            continue
        behind = us[0][1].get("postgres", 0) + us[0][1].get("redis", 0)
        out.append(f"- {path}, even with {', '.join(even)}: per request at each maximum, "
                   + ", ".join(f"{whose(name)} server {cpu['server']:.0f} µs" for name, cpu in us)
                   + f"; PostgreSQL and Redis {behind:.0f} µs behind ours, the same statements on each. The "
                   "knee comes where the two cores, which the server, PostgreSQL, Redis and the generator share, "
                   + ("run short; with the database's part as large as the server's, a cheaper server moves it "
                      "little. " if behind >= 0.8 * us[0][1]["server"] else "run short. ")
                   + "To hold more, both have to cost less a request: ours' server (its lever: the Peers "
                   "section) and the database's work.")
    return ["Where ours and a peer are even at the SLO, what each request cost (same run):", "", *out, ""] if out else []


def goal_lines(stacks: dict[str, Any], paths: list[str]) -> list[str]:
    """Per peer, the paths where ours / peer meets the project's goal against it (bench/report/
    verdicts.py), at the maximum and at the SLO, and where it does not."""
    ours, out = stacks.get("ours", {}), []
    for name, curves in stacks.items():
        if name in ("ours", "bare-protocol"):
            continue
        verdicts = []
        for path in paths:
            if path not in curves or path not in ours:
                continue
            goal = peer_goal(name, path)
            at_max = ours[path]["max_rps"] / curves[path]["max_rps"]
            at_slo = slo_verdict(ours[path], curves[path], name)
            verdicts.append(f"{path} {at_max:.2f}x at the maximum (goal {goal:g}x: {'met' if at_max >= goal else 'missed'}), "
                            f"{at_slo}")
        if verdicts:
            out.append(f"- against {name}: " + "; ".join(verdicts) + ".")
    if any("missed" in line for line in out):
        out += ["", "Where a goal is missed at a maximum here, the Peers section gives the measured reason and the "
                "next lever, path by path, from each stack's CPU per request (its maxima are measured again "
                "there, in rounds of their own: the two runs of a ratio near its goal may fall on either side)."]
    return out


def detail(path: str, c: dict[str, Any]) -> list[str]:
    return [f"ours, {path} (maximum {f0(c['max_rps'])} req/s, {c['max_tool']}):", "", table(
        ["offered req/s", "achieved", "p50 ms", "p99 ms", "p99.9 ms", "non-2xx", "no answer", "held"],
        [[f0(p["offered_rps"]), f"{p['achieved_share']:.1%}", f2(p["p50_ms"]), f2(p["p99_ms"]), f2(p["p999_ms"]),
          str(p["non_2xx"]), str(p["transport_errors"]), "yes" if p["held"] else "no"] for p in c["points"]]), ""]


def limit_line(stacks: dict[str, Any]) -> list[str]:
    bare, ours = stacks.get("bare-protocol", {}).get("hit"), stacks.get("ours", {}).get("hit")
    if not bare or not ours:
        return []
    share = ours["max_rps"] / bare["max_rps"]
    verdict = "met" if share >= HIT_LIMIT_GOAL else "missed"
    return [f"The hit path's limit: a bare uvloop protocol with httptools answering the same page's bytes "
            f"from memory (bench/peers/bare_protocol.py) ran at {f0(bare['max_rps'])} req/s; our cached search "
            f"at {f0(ours['max_rps'])}, **{share:.2f}** of it (goal {HIT_LIMIT_GOAL:g}: {verdict}). At the SLO: "
            f"{f0(ours['capacity_rps'])} against {f0(bare['capacity_rps'])}.", *cpu_split(ours, bare), ""]


def cpu_split(ours: dict[str, Any], bare: dict[str, Any]) -> list[str]:
    """Where the hit's extra time goes, from both maxima's CPU per request (user: the process's own
    code; system: the kernel's work for it)."""
    a, b = ours.get("cpu_us_per_request", {}), bare.get("cpu_us_per_request", {})
    if "server_user" not in a or "server_user" not in b:
        return []
    return ["", f"Per request at those maxima, ours used {a['server_user']:.1f} µs of user CPU and "
            f"{a['server_system']:.1f} µs of system CPU; the bare protocol {b['server_user']:.1f} and "
            f"{b['server_system']:.1f}. The system part is the kernel's work for the same requests and "
            "responses; the user part is the Python the front runs for a hit (the token, the route table, the cache's "
            "trust checks, the request id, the metrics), where the bare protocol runs one callback. The next "
            "lever is compiling the front's hit path (mypyc, which the fully typed code allows, or Cython), "
            "keeping every check.", "", bound_line(a, b)]


def bound_line(ours: dict[str, float], bare: dict[str, float]) -> str:
    """What the hit could reach were its user CPU the bare protocol's, the kernel's part as measured:
    one core saturated either way, so the share of the bare rate is the inverse share of CPU."""
    best = ours["server_system"] + bare["server_user"]
    share = (bare["server_user"] + bare["server_system"]) / best if best else float("nan")
    return (f"Even with the front's Python as cheap as the bare protocol's callback, ours would spend "
            f"{best:.1f} µs a request with the kernel's part as measured: **{share:.2f}** of the bare "
            f"protocol's rate at most on one saturated core. Past that, the lever is the kernel's part of each "
            f"request ({ours['server_system']:.1f} µs against the bare protocol's {bare['server_system']:.1f} "
            "for the same receive and send), not the front's code.")


def mixed_line(stacks: dict[str, Any], slo_ms: float, login_us: float | None) -> list[str]:
    """Why the Mixed stream holds no rate within the SLO, where it holds none: its median and p99 at
    its lowest rate, and the two kinds of request whose own latency is above the SLO."""
    ours = stacks.get("ours", {})
    mixed, post = ours.get("mixed"), ours.get("post")
    if not mixed or not mixed["points"] or mixed["points"][0]["held"]:
        return []
    low = min(mixed["points"], key=lambda p: p["offered_rps"])
    words = [f"mixed holds no rate within {slo_ms:g} ms, not even its lowest, {f0(low['offered_rps'])} req/s, "
             f"where its median request took {f2(low['p50_ms'])} ms and its p99 {f2(low['p99_ms'])} ms: 3% of "
             "its requests hash a password (2% login, 1% register, argon2id"]
    words.append(f", {login_us / 1000:.0f} ms of the worker's CPU a login in the endpoints run)" if login_us else ")")
    if post and post["points"] and not post["points"][0]["held"]:
        first = min(post["points"], key=lambda p: p["offered_rps"])
        words.append(f" and 15% are posts, which hold no rate within {slo_ms:g} ms on their own curve either "
                     f"(p50 {f2(first['p50_ms'])} ms at {f0(first['offered_rps'])} req/s, where nothing queues: a "
                     "post is answered once its commit is flushed to disk, fsync on)")
    words.append(". So its p99 is theirs at any load: read it at the looser SLO above, and the searches "
                 "alone on the hit and miss rows.")
    return ["".join(words), ""]


def proof_line(p: dict[str, Any]) -> str:
    verdict = "held" if p["held"] else "**not held: the curves above that rate measure the generator**"
    return (f"The generator's proof: against a bare protocol answering constant bytes, at the top rate "
            f"offered to any stack ({f0(p['target_rps'])} req/s), it achieved **{p['achieved_share']:.2%}** "
            f"({verdict}; at least 99% required), p99 {f2(p['p99_ms'])} ms, using {p['generator_cpu_s']:.2f} s "
            f"of CPU in {p['wall_s']:g} s ({p['generator_us_per_request']:.1f} µs a request, its own core).")


def kept_line(stacks: dict[str, Any]) -> list[str]:
    """Which curves come from an earlier run (make bench-curves --merge), and its commit."""
    kept = sorted({(c["measured_at"], path) for curves in stacks.values() for path, c in curves.items()
                   if "measured_at" in c})
    if not kept:
        return []
    by_commit: dict[str, list[str]] = {}
    for commit, path in kept:
        by_commit.setdefault(commit, []).append(path)
    return ["Paths measured in an earlier run and kept: " + "; ".join(
        f"{', '.join(paths)} at {commit}" for commit, paths in by_commit.items())
        + " (each path's stacks side by side, in the same minutes).", ""]


def section(result: dict[str, Any], plot_dir: str, login_us: float | None = None) -> list[str]:
    plan, stacks = result["plan"], result["stacks"]
    loose = plan.get("loose_factor", 5)
    paths = paths_of(result)
    names = [n for n in stacks if n not in ("ours", "bare-protocol")]
    out = [titled(TITLE, result), "",
           f"`make bench-curves` (bench/curves.py): for each stack and path, one server process on CPU "
           f"{result['facts'].get('server_cpu', '0')}; its maximum found closed loop (wrk, 64 connections); "
           f"then Poisson arrivals offered at {', '.join(f'{f:.0%}' for f in plan['fractions'])} of that "
           f"maximum by bench/openloop (its own C generator on CPU {result['facts'].get('load_cpu')}, "
           f"{result['facts'].get('connections')} keep-alive connections), {plan['seconds']:g} s per rate after "
           f"{plan['warmup']:g} s not counted, latency counted from when each request was *due* (no "
           f"coordinated omission), and two bisection steps at the SLO. A rate that misses the SLO is run once "
           "more and judged on the better run (one stall of this shared machine spoils a p99; every stack "
           f"is judged alike). A rate is *held* when p99 <= "
           f"{plan['slo_ms']:g} ms and at least 98% of the requests due were answered 2xx within the window; "
           "the *capacity* is the highest offered rate held with every lower rate held too. bypass runs with "
           "CACHE_ENABLED=false on every stack; miss flushes Redis before each rate and asks a tag not cached "
           "yet on every request; mixed is Locust's Mixed scenario as a stream (80% search, 15% post, 4% "
           "login or /me, 1% register), served by ours only (the peers have no account routes).", "",
           *kept_line(stacks), proof_line(result["proof"]), "",
           f"Capacity at the SLO (p99 <= {plan['slo_ms']:g} ms), req/s, and ours / peer:", "",
           table(["path", "ours", *names], capacity_rows(stacks, paths)), "",
           f"Capacity at {loose:g}x the SLO (p99 <= {loose * plan['slo_ms']:g} ms), for the paths whose floor is "
           "above the SLO on this machine (a post waits for its commit):", "",
           table(["path", "ours", *names], capacity_rows(stacks, paths, "capacity_loose_rps")), "",
           *mixed_line(stacks, plan["slo_ms"], login_us),
           "Each stack's maximum, closed loop (req/s):", "", table(["path", *stacks], max_rows(stacks, paths)), "",
           "Ours / each peer against the project's goals (the original's \"at least 2x\" against the Python "
           "frameworks, at least even with Granian and Node.js), and whether ours holds more at the SLO:", "",
           *goal_lines(stacks, paths), "",
           *even_lines(stacks, paths),
           *limit_line(stacks),
           "How to read the curves: each point is one offered rate; where the solid line (p99) leaves the "
           "floor and turns up is the knee, the rate beyond which requests queue. A stack whose knee sits "
           "further right holds more load within the SLO, whatever its closed-loop maximum.", ""]
    for path in paths:
        out += [f"![{path}]({plot_dir}/curve-{path}.png)", ""]
        if path in stacks.get("ours", {}):
            out += detail(path, stacks["ours"][path])
    return out


def publish(result: dict[str, Any]) -> None:
    """The section and its plots, in place in RESULTS.md (the rest left as it was measured)."""
    plots(result, PLOTS)
    publish_section(RESULTS_MD, TITLE, section(result, PLOTS.relative_to(ROOT).as_posix()))
