"""python -m bench.chaos [--short] [--publish]: the run (bench/chaos/__init__.py says what it does)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import facts
from bench.chaos.faults import FAULTS, POOLED_FAULTS, Faults, log, schedule
from bench.chaos.load import READERS, TAGS, WRITERS, Load, Phase
from bench.chaos.partition import PARTITION_FAULTS, SLOW, partitioned
from bench.chaos.partition import experiment as partition_experiment
from bench.chaos.verdicts import report, traceback_kind, tracebacks, unknown_causes
from bench.harness import BENCH_ENV
from bench.paths import RESULTS, RESULTS_MD
from bench.report.markdown import publish_section
from bench.report.runs import (
    CHAOS_PARTITION_TITLE,
    CHAOS_POOLED_TITLE,
    CHAOS_TITLE,
    chaos_section,
    partition_section,
)
from ops import pgbouncer, redis_server, replica, stack
from ops.hosts import Hosts
from ops.process import ServiceProcess
from service.db.migrate import migrate
from service.settings import Settings
from tests.proxy import Proxy

# The bench run's settings on a stack of its own (its faults must not touch the bench data).
CHAOS_ENV = {**BENCH_ENV, **stack.named_env("chaos"), "PORT": "2096"}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="make chaos: faults injected under load")
    parser.add_argument("--short", action="store_true", help="shorter periods (CI): steady 2 s, faults 1.5 s")
    parser.add_argument("--steady", type=float, default=None, help="seconds of steady load between faults")
    parser.add_argument("--fault", type=float, default=None, help="seconds each fault lasts")
    parser.add_argument("--tier", choices=["single", "pooled", "partition"], default="single",
                        help="pooled: the service through PgBouncer, with a streaming replica; partition: "
                             "two instances on test hosts of their own, links cut (bench/chaos/partition.py)")
    parser.add_argument("--faults", default=None, help="comma-separated, in order (default: the tier's)")
    parser.add_argument("--publish", action="store_true", help="write RESULTS.md's Chaos section")
    args = parser.parse_args()
    if args.faults is None:
        args.faults = ",".join({"pooled": POOLED_FAULTS, "partition": PARTITION_FAULTS}.get(args.tier, FAULTS))
    args.steady = args.steady if args.steady is not None else (2.0 if args.short else 5.0)
    long_cuts = 20.0 if args.tier == "partition" else 3.0  # cuts of 20 s and 60 s (redis-cut-long)
    args.fault = args.fault if args.fault is not None else (1.5 if args.short else long_cuts)
    args.faults = [f for f in args.faults.split(",") if f]
    known = [*FAULTS, *(f for f in POOLED_FAULTS if f not in FAULTS), *PARTITION_FAULTS]
    if unknown := set(args.faults) - set(known):
        parser.error(f"unknown faults {sorted(unknown)}; known: {known}")
    return args


def database_env(settings: Settings, tier: str) -> dict[str, str]:
    """The service's database settings: the primary itself, or (pooled) PgBouncer in front of it
    and the streaming replica for searches, both started here."""
    primary = stack.urls(settings)[0]
    if tier == "single":
        return {"DATABASE_URL": primary}
    return {"DATABASE_URL": pgbouncer.start(settings), "DB_TRANSACTION_POOLER": "true",
            "DB_POOLER_PREPARED_STATEMENTS": "true",
            "MIGRATE_DATABASE_URL": primary, "REPLICA_DATABASE_URL": replica.start(settings)}


def experiment(settings: Settings, service: ServiceProcess, proxy: Proxy, args: argparse.Namespace) -> dict[str, Any]:
    """The load under the faults, then the state after healing, judged."""
    load, phases = Load(service.url, uuid.uuid4().hex[:6]), list[Phase]()

    async def run() -> None:
        faults = Faults(settings, service, proxy, args.fault)
        await asyncio.gather(schedule(faults, args.faults, args.steady, phases, load),
                             load.run())

    asyncio.run(run())
    time.sleep(1.0)  # the last in-flight cache repairs
    final = asyncio.run(load.final_state(stack.urls(settings)[0]))
    return report(phases, load.writes, load.reads, load.tags, final)


def judge_log(result: dict[str, Any], log_path: Path) -> None:
    """The service's tracebacks: noise and shutdown races counted apart, any other one a problem."""
    blocks = tracebacks(log_path)
    service_blocks = [block for block in blocks if traceback_kind(block) == "service"]
    for block in service_blocks[:3]:  # in the output too: CI deletes the log with the checkout
        log("service traceback:\n" + block)
    result["settings"].update(server_tracebacks=len(service_blocks),
                              sanic_shutdown_races=sum(1 for b in blocks if traceback_kind(b) == "shutdown"))
    causes = unknown_causes(log_path) + collections.Counter(result["settings"].get("write_unknown_causes", {}))
    result["settings"]["write_unknown_causes"] = dict(causes.most_common())
    if service_blocks:
        result["problems"].append(f"the service logged {len(service_blocks)} tracebacks (see {log_path})")


def show(result: dict[str, Any]) -> None:
    for row in result["phases"]:
        log(f"{row['phase']:>12}: writes {row['writes']:4} acked {row['acked']:4} lost {row['lost']} "
            f"503 {row['unavailable']} (landed {row['unavailable_landed']}) "
            f"no answer {row['indeterminate']} (landed {row['indeterminate_landed']}) "
            f"refused {row['refused']} stale reads {row['stale_reads']}/{row['reads']} "
            f"500s {row['status_500']} 503s {row['status_503']} recover {row['recover_s']} s")
        for example in row["stale_examples"]:
            log(f"  stale read (seconds after healing; missed writes as (acked at, worker)): {example}")
    for cause, n in result["settings"].get("write_unknown_causes", {}).items():
        log(f"  {n} posts answered 503 \"may have landed\", cut off by: {cause}")
    log(f"after healing: {result['final']}")
    for problem in result["problems"]:
        log(f"MISSED: {problem}")


def partitions(args: argparse.Namespace, settings: Settings) -> int:
    """The partition tier: the same run with the database notices on (judged) and off (its stale
    reads are what they prevent: it must catch some)."""
    if not Hosts.available():  # CI runs as root: there it must run, never be passed over
        log("partition tier: test hosts need root, iproute2 and iptables (network namespaces): "
            + ("missing, so it cannot run" if os.environ.get("CI") else "skipped"))
        return 1 if os.environ.get("CI") else 0
    runs: dict[str, dict[str, Any]] = {}
    for notices in ("on", "off"):
        env = {"DATABASE_NOTICES": "true" if notices == "on" else "false"}
        log(f"chaos: {WRITERS} writers, {READERS} readers, 2 instances of 1 worker behind HAProxy, partition "
            f"tier, DATABASE_NOTICES={env['DATABASE_NOTICES']}; steady {args.steady:g} s, faults "
            f"{args.fault:g} s: " + ", ".join(args.faults))
        with partitioned(settings, env) as net:
            result = partition_experiment(settings, net, args, uuid.uuid4().hex[:6])
            logs = [net.balancer.directory / f"instance-{port}.log" for port in net.balancer.ports]
        stack.up(settings)
        result["settings"] = {**run_settings(args, instances=2),
                              "slow": {name: dataclasses.asdict(shape) for name, shape in SLOW.items()}}
        for path in logs:
            judge_log(result, path)
        if notices == "off":  # its stale reads are the point: recorded, not missed targets
            result["expected"], result["problems"] = result["problems"], []
        show(result)
        runs[notices] = result
    caught = sum(row["stale_reads"] for row in runs["off"]["phases"])
    problems = list(runs["on"]["problems"])
    if not caught:
        problems.append("with DATABASE_NOTICES=false no stale read was caught: the run cannot show what "
                        "the notices prevent")
    combined = {"on": runs["on"], "off": runs["off"], "problems": problems, "settings": runs["on"]["settings"]}
    (RESULTS / f"chaos-partition{'-short' if args.short else ''}.json").write_text(json.dumps(combined, indent=1) + "\n")
    for problem in problems:
        log(f"MISSED: {problem}")
    if args.publish:
        publish_section(RESULTS_MD, CHAOS_PARTITION_TITLE, partition_section(combined))
    return 1 if problems else 0


def run_settings(args: argparse.Namespace, instances: int = 1) -> dict[str, Any]:
    return {"tier": args.tier, "writers": WRITERS, "readers": READERS, "workers": 2, "tags": TAGS,
            "instances": instances, "steady_s": args.steady, "fault_s": args.fault, "short": args.short,
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": facts.commit()}


def unwind(signum: int, frame: object) -> None:
    """SIGTERM (a CI timeout, `kill`) unwinds as Ctrl-C does: the services stopped, the hosts
    removed. Only once: a second SIGTERM (timeout(1) forwards its own) would cut that cleanup short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signum)


def main() -> int:
    args = arguments()
    signal.signal(signal.SIGTERM, unwind)
    two_cpus = len(os.sched_getaffinity(0)) > 1
    if two_cpus:
        os.sched_setaffinity(0, {1})  # the load generator off the service's CPU
    settings = Settings.from_env(CHAOS_ENV)
    stack.up(settings)
    asyncio.run(migrate(stack.urls(settings)[0]))
    if args.tier == "partition":
        return partitions(args, settings)
    proxy = Proxy(settings.stack_redis_port)
    log_path = settings.data_dir / "logs" / "service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    service = ServiceProcess({**CHAOS_ENV, "WORKERS": "2", "REDIS_URL": redis_server.url_at(settings, proxy.port),
                              **database_env(settings, args.tier)}, log_path, cpus="0" if two_cpus else None)
    service.start(append_log=True)
    log(f"chaos: {WRITERS} writers, {READERS} readers, 2 workers, {args.tier} tier; steady {args.steady:g} s, "
        f"faults {args.fault:g} s: " + ", ".join(args.faults))
    try:
        result = experiment(settings, service, proxy, args)
    finally:
        service.stop()
        proxy.close()
        stack.up(settings)  # leave the stack whole (a fault may have been mid-way)
        if args.tier == "pooled":
            replica.stop(settings)
            pgbouncer.stop(settings)
    result["settings"] = run_settings(args)
    judge_log(result, log_path)
    name = "chaos" + ("-pooled" if args.tier == "pooled" else "") + ("-short" if args.short else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    show(result)
    if args.publish:
        publish_section(RESULTS_MD, CHAOS_POOLED_TITLE if args.tier == "pooled" else CHAOS_TITLE,
                        chaos_section(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
