"""make chaos: faults injected under load, with every outcome accounted for (after Jepsen).

The service runs with 2 workers (CPU 0) on its own stack (.data/chaos), reaching Redis through a
TCP proxy that can black-hole it. Concurrent writers post tweets, each with a unique marker and
1-2 tags shared between writers, and record every outcome: acknowledged (201 and id), refused
(an error status, or a connection that never opened) or indeterminate (sent, no answer).
Concurrent readers search the shared tags (page_size 100) and record start, end, total and ids.
Meanwhile faults are injected one after another, with steady periods between:

  redis-kill    Redis killed (-9), restarted after the fault period
  redis-freeze  Redis stopped (SIGSTOP), resumed (SIGCONT)
  redis-cut     Redis cut off by the proxy (bytes swallowed), then reconnected
  pg-kill       PostgreSQL's postmaster killed (-9), restarted
  worker-kill   one service worker killed (-9) (a sibling starts it again)
  sigterm       the whole service sent SIGTERM under load, started again once it has exited

After healing: every acknowledged tweet must be in PostgreSQL and in the search results of each
of its tags, and each tag's total must equal its count in PostgreSQL. Per fault: writes attempted,
acknowledged, lost, refused, indeterminate (and whether they landed); reads that started after an
acknowledgement and missed it; statuses; seconds to recover. Exit 1 if a target is missed.

    python -m bench.chaos [--short] [--publish]       (make chaos; CI runs make chaos CHAOS_SHORT=1)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import facts
from bench.harness import BENCH_ENV, children_connected_to
from bench.paths import RESULTS, RESULTS_MD
from bench.report.markdown import publish_section
from bench.report.runs import CHAOS_TITLE, chaos_section
from ops import postgres, redis_server, stack
from ops.process import ServiceProcess
from ops.system import StackError
from service.db.migrate import migrate
from service.settings import Settings
from tests.proxy import Proxy

OUT = RESULTS
# The bench run's settings on a stack of its own (its faults must not touch the bench data).
CHAOS_ENV = {**BENCH_ENV, **stack.named_env("chaos"), "PORT": "2096"}
FAULTS = ["redis-kill", "redis-freeze", "redis-cut", "pg-kill", "worker-kill", "sigterm"]
WRITERS, READERS, TAGS = 4, 4, 4


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Write:
    writer: int
    marker: str
    tags: list[str]
    start: float
    end: float = 0.0
    outcome: str = ""  # acked | refused | unavailable (5xx) | indeterminate (no answer)
    status: str = ""  # HTTP status, or the transport error's name
    tweet_id: int | None = None
    retry_after: bool = True
    worker: str = ""  # the X-Request-ID prefix: which worker process answered


@dataclass
class Read:
    tag: str
    start: float
    end: float = 0.0
    status: str = ""
    total: int = -1
    ids: list[int] = field(default_factory=list)
    retry_after: bool = True
    cache: str = ""  # X-Cache
    worker: str = ""


@dataclass
class Phase:
    name: str
    start: float
    healed: float = 0.0
    end: float = 0.0


class Experiment:
    def __init__(self, settings: Settings, service: ServiceProcess, proxy: Proxy, steady: float, fault: float) -> None:
        self.settings = settings
        self.service = service
        self.proxy = proxy
        self.steady = steady
        self.fault = fault
        self.run_id = uuid.uuid4().hex[:6]
        self.tags = [f"chaos{self.run_id}t{i}" for i in range(TAGS)]
        self.writes: list[Write] = []
        self.reads: list[Read] = []
        self.phases: list[Phase] = []
        self.stop = asyncio.Event()

    # -- load --

    async def login(self, client: httpx.AsyncClient, name: str) -> dict[str, str]:
        body = {"username": name, "password": "chaos password 1", "full_name": "Chaos"}
        r = await client.post("/api/v1/register", json=body)
        assert r.status_code == 201, r.text
        r = await client.post("/api/v1/login", json={"username": name, "password": body["password"]})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def writer(self, n: int, auth: dict[str, str]) -> None:
        rng = random.Random(n)
        seq = 0
        async with httpx.AsyncClient(base_url=self.service.url, timeout=5) as client:
            while not self.stop.is_set():
                seq += 1
                tags = rng.sample(self.tags, rng.randint(1, 2))
                w = Write(n, f"m{self.run_id}w{n}s{seq}", tags, time.monotonic())
                try:
                    r = await client.post("/api/v1/tweet", headers=auth,
                                          json={"msg": f"{w.marker} chaos", "tags": tags})
                    w.status = str(r.status_code)
                    w.worker = r.headers.get("x-request-id", "").split("-")[0]
                    if r.status_code == 201:
                        w.outcome, w.tweet_id = "acked", r.json()["data"]["id"]
                    else:
                        # A 503 before the commit is a refusal; after it (the commit's answer lost)
                        # the tweet may exist: whether it landed is looked up at the end.
                        w.outcome = "refused" if r.status_code < 500 else "unavailable"
                        w.retry_after = r.status_code != 503 or "retry-after" in r.headers
                except httpx.ConnectError as exc:  # never reached the service: not written
                    w.outcome, w.status = "refused", type(exc).__name__
                except httpx.TransportError as exc:
                    w.outcome, w.status = "indeterminate", type(exc).__name__
                w.end = time.monotonic()
                self.writes.append(w)
                await asyncio.sleep(0.02)

    async def reader(self, n: int, auth: dict[str, str]) -> None:
        rng = random.Random(100 + n)
        async with httpx.AsyncClient(base_url=self.service.url, timeout=5) as client:
            while not self.stop.is_set():
                read = Read(rng.choice(self.tags), time.monotonic())
                try:
                    r = await client.get("/api/v1/search-tweets", headers=auth,
                                         params={"tag": read.tag, "page_size": 100})
                    read.status = str(r.status_code)
                    if r.status_code == 200:
                        page = r.json()
                        read.total = page["pagination"]["total"]
                        read.ids = [t["id"] for t in page["data"]]
                        read.cache = r.headers.get("x-cache", "")
                        read.worker = r.headers.get("x-request-id", "").split("-")[0]
                    read.retry_after = r.status_code != 503 or "retry-after" in r.headers
                except httpx.TransportError as exc:
                    read.status = type(exc).__name__
                read.end = time.monotonic()
                self.reads.append(read)
                await asyncio.sleep(0.01)

    # -- faults --

    async def inject(self, name: str) -> None:
        s = self.settings
        if name == "redis-kill":
            os.kill(redis_server.pid(s) or 0, signal.SIGKILL)
            await asyncio.sleep(self.fault)
            await asyncio.to_thread(redis_server.start, s)
        elif name == "redis-freeze":
            pid = redis_server.pid(s) or 0
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(self.fault)
            os.kill(pid, signal.SIGCONT)
        elif name == "redis-cut":
            self.proxy.blackhole = True
            await asyncio.sleep(self.fault)
            self.proxy.blackhole = False
        elif name == "pg-kill":
            os.kill(postgres.pid(s) or 0, signal.SIGKILL)
            await asyncio.sleep(self.fault)
            for attempt in range(20):  # the old backends notice the postmaster's death and exit
                try:
                    await asyncio.to_thread(postgres.start, s)
                    break
                except StackError:
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.5)
        elif name == "worker-kill":
            os.kill(min(children_connected_to(self.service.pid, s.stack_pg_port)), signal.SIGKILL)
            await asyncio.sleep(self.fault)
        elif name == "sigterm":
            await asyncio.to_thread(self.service.stop)
            await asyncio.to_thread(self.service.start, append_log=True)

    async def schedule(self, faults: list[str]) -> None:
        self.phases.append(Phase("steady", time.monotonic()))
        await asyncio.sleep(self.steady)
        for name in faults:
            phase = Phase(name, time.monotonic())
            self.phases[-1].end = phase.start
            self.phases.append(phase)
            log(f"fault: {name}")
            await self.inject(name)
            phase.healed = time.monotonic()
            await asyncio.sleep(self.steady)
        self.phases[-1].end = time.monotonic()
        self.stop.set()

    async def run(self, faults: list[str]) -> None:
        async with httpx.AsyncClient(base_url=self.service.url, timeout=30) as client:
            auths = [await self.login(client, f"chaos{self.run_id}u{i}") for i in range(WRITERS + READERS)]
        await asyncio.gather(self.schedule(faults),
                             *(self.writer(i, auths[i]) for i in range(WRITERS)),
                             *(self.reader(i, auths[WRITERS + i]) for i in range(READERS)))

    # -- accounting --

    def phase_of(self, t: float) -> int:
        for i, phase in enumerate(self.phases):
            if phase.start <= t < (phase.end or float("inf")):
                return i
        return len(self.phases) - 1

    def missed(self, read: Read, acked_by_tag: dict[str, list[Write]]) -> list[Write]:
        """Writes acknowledged before this read began, yet missing from it (or from its total)."""
        if read.status != "200":
            return []
        before = [w for w in acked_by_tag[read.tag] if w.end < read.start]
        floor = min(read.ids) if len(read.ids) == 100 else 0  # a full page: only newer ids must show
        shown = set(read.ids)
        missing = [w for w in before if w.tweet_id is not None and w.tweet_id >= floor
                   and w.tweet_id not in shown]
        if read.total < len(before) and not missing:
            return before[-1:]
        return missing

    def stale(self, read: Read, acked_by_tag: dict[str, list[Write]]) -> int:
        return int(bool(self.missed(read, acked_by_tag)))

    async def final_state(self, auth: dict[str, str]) -> dict[str, Any]:
        dsn = stack.urls(self.settings)[0]
        conn = await asyncpg.connect(dsn)
        try:
            landed = {r["msg"].split()[0]: r["id"] for r in await conn.fetch(
                "SELECT id, msg FROM tweets WHERE msg LIKE $1", f"m{self.run_id}w%")}
            db_ids = {tag: {r["id"] for r in await conn.fetch(
                "SELECT tweet_id AS id FROM tweet_tags WHERE tag = $1", tag)} for tag in self.tags}
        finally:
            await conn.close()
        searched: dict[str, set[int]] = {}
        totals: dict[str, int] = {}
        async with httpx.AsyncClient(base_url=self.service.url, timeout=10) as client:
            for tag in self.tags:
                ids: set[int] = set()
                before: int | None = None
                while True:
                    params: dict[str, Any] = {"tag": tag, "page_size": 100}
                    if before is not None:
                        params["before_id"] = before
                    r = await client.get("/api/v1/search-tweets", headers=auth, params=params)
                    r.raise_for_status()
                    page = r.json()
                    totals.setdefault(tag, page["pagination"]["total"])
                    batch = [t["id"] for t in page["data"]]
                    ids.update(batch)
                    if len(batch) < 100:
                        break
                    before = min(batch)
                searched[tag] = ids
        return {"landed": landed, "db_ids": db_ids, "searched": searched, "totals": totals}

    def report(self, final: dict[str, Any]) -> dict[str, Any]:
        landed, db_ids, searched, totals = (final["landed"], final["db_ids"], final["searched"],
                                            final["totals"])
        acked_by_tag: dict[str, list[Write]] = collections.defaultdict(list)
        for w in self.writes:
            if w.outcome == "acked":
                for tag in w.tags:
                    acked_by_tag[tag].append(w)
        rows = []
        for i, phase in enumerate(self.phases):
            ws = [w for w in self.writes if self.phase_of(w.start) == i]
            rs = [r for r in self.reads if self.phase_of(r.start) == i]
            acked = [w for w in ws if w.outcome == "acked"]
            unsure = [w for w in ws if w.outcome == "indeterminate"]
            unavailable = [w for w in ws if w.outcome == "unavailable"]
            heal = phase.healed or phase.start
            ok_w = [w.end - heal for w in ws if w.start >= heal and w.outcome == "acked"]
            ok_r = [r.end - heal for r in rs if r.start >= heal and r.status == "200"]
            rows.append({
                "phase": phase.name,
                "seconds": round((phase.end or phase.start) - phase.start, 1),
                "writes": len(ws), "acked": len(acked),
                "lost": sum(1 for w in acked if w.marker not in landed),
                "refused": sum(1 for w in ws if w.outcome == "refused"),
                "refused_landed": sum(1 for w in ws if w.outcome == "refused" and w.marker in landed),
                "unavailable": len(unavailable),
                "unavailable_landed": sum(1 for w in unavailable if w.marker in landed),
                "indeterminate": len(unsure),
                "indeterminate_landed": sum(1 for w in unsure if w.marker in landed),
                "reads": len(rs),
                "stale_reads": sum(self.stale(r, acked_by_tag) for r in rs),
                "stale_by_cache": dict(collections.Counter(r.cache for r in rs if self.stale(r, acked_by_tag))),
                "stale_examples": [
                    {"read_s": round(r.start - heal, 3), "cache": r.cache, "reader": r.worker,
                     "missed": [(round(w.end - heal, 3), w.worker) for w in self.missed(r, acked_by_tag)][:3]}
                    for r in rs if self.stale(r, acked_by_tag)][:8],
                "write_statuses": dict(collections.Counter(w.status for w in ws)),
                "read_statuses": dict(collections.Counter(r.status for r in rs)),
                "status_500": sum(1 for w in ws if w.status == "500") + sum(1 for r in rs if r.status == "500"),
                "status_503": sum(1 for w in ws if w.status == "503") + sum(1 for r in rs if r.status == "503"),
                "missing_retry_after": sum(1 for w in ws if not w.retry_after) + sum(1 for r in rs if not r.retry_after),
                "recover_s": round(max(min(ok_w, default=float("nan")), min(ok_r, default=float("nan"))), 2)
                if phase.healed else None,
            })
        acked_all = [w for w in self.writes if w.outcome == "acked"]
        final_check = {
            "acked": len(acked_all),
            "lost": sum(1 for w in acked_all if w.marker not in landed),
            "missing_from_search": sum(1 for w in acked_all for tag in w.tags
                                       if w.tweet_id not in searched[tag]),
            "search_differs_from_db": sum(1 for tag in self.tags if searched[tag] != db_ids[tag]),
            "total_differs_from_db": sum(1 for tag in self.tags if totals[tag] != len(db_ids[tag])),
        }
        # A 503 is expected while PostgreSQL is down: from the kill until a second after it is
        # back (pooled connections are replaced on first use). Judged by each request's own span,
        # so one that began just before the kill is not blamed on the phase before.
        down = [(ph.start, ph.healed + 1.0) for ph in self.phases if ph.name == "pg-kill"]
        spans: list[Write | Read] = [*self.writes, *self.reads]
        unexpected_503 = collections.Counter(
            self.phases[self.phase_of(x.start)].name for x in spans
            if x.status == "503" and not any(a <= x.end and x.start <= b for a, b in down))
        problems = []
        for name, n in unexpected_503.items():
            problems.append(f"{name}: {n} answers 503 while PostgreSQL was up")
        for row in rows:
            if row["lost"] or row["stale_reads"] or row["status_500"] or row["missing_retry_after"] \
                    or row["refused_landed"]:
                problems.append(f"{row['phase']}: lost {row['lost']}, stale reads {row['stale_reads']}, "
                                f"500s {row['status_500']}, 503 without Retry-After "
                                f"{row['missing_retry_after']}, refused yet written {row['refused_landed']}")
        for key in ("lost", "missing_from_search", "search_differs_from_db", "total_differs_from_db"):
            if final_check[key]:
                problems.append(f"after healing: {key} = {final_check[key]}")
        return {"phases": rows, "final": final_check, "problems": problems}


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


def traceback_kind(block: str) -> str:
    """asyncpg: its pool logging a failed reconnect while PostgreSQL is down (noise). shutdown: a
    worker stopped by Sanic while it was still starting (KeyboardInterrupt) or with its loop
    stopped under Sanic's own cleanup; reported, not counted (any request cut off shows as no
    answer in the table). service: anything else, which fails the run."""
    if "_maintain_min_size" in block:
        return "asyncpg"
    if block.endswith("KeyboardInterrupt") or ("sanic/server/runners.py" in block
                                               and "Event loop stopped before Future completed" in block):
        return "shutdown"
    return "service"


def settings_for_chaos() -> Settings:
    return Settings.from_env(CHAOS_ENV)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="shorter periods (CI): steady 2 s, faults 1.5 s")
    parser.add_argument("--steady", type=float, default=None, help="seconds of steady load between faults")
    parser.add_argument("--fault", type=float, default=None, help="seconds each fault lasts")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order")
    parser.add_argument("--publish", action="store_true", help="write RESULTS.md's Chaos section")
    args = parser.parse_args()
    steady = args.steady if args.steady is not None else (2.0 if args.short else 5.0)
    fault = args.fault if args.fault is not None else (1.5 if args.short else 3.0)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})  # the load generator off the service's CPU
    settings = settings_for_chaos()
    stack.up(settings)
    asyncio.run(migrate(stack.urls(settings)[0]))
    proxy = Proxy(settings.stack_redis_port)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "service.log").write_text("")
    service = ServiceProcess({**CHAOS_ENV, "WORKERS": "2", "REDIS_URL": redis_server.url_at(settings, proxy.port),
                       "DATABASE_URL": stack.urls(settings)[0]}, logs / "service.log",
                      cpus="0" if len(os.sched_getaffinity(0)) > 1 else None)
    service.start(append_log=True)
    experiment = Experiment(settings, service, proxy, steady, fault)
    log(f"chaos: {WRITERS} writers, {READERS} readers, 2 workers; steady {steady:g} s, faults {fault:g} s: "
        + ", ".join(faults))
    try:
        asyncio.run(experiment.run(faults))
        time.sleep(1.0)  # the last in-flight cache repairs
        async def final() -> dict[str, Any]:
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
                auth = await experiment.login(client, f"chaos{experiment.run_id}check")
            return await experiment.final_state(auth)
        result = experiment.report(asyncio.run(final()))
    finally:
        service.stop()
        proxy.close()
        stack.up(settings)  # leave the stack whole (a fault may have been mid-way)
    blocks = tracebacks(logs / "service.log")
    service_blocks = [block for block in blocks if traceback_kind(block) == "service"]
    errors, races = len(service_blocks), sum(1 for block in blocks if traceback_kind(block) == "shutdown")
    for block in service_blocks[:3]:  # in the output too: CI deletes the log with the checkout
        log("service traceback:\n" + block)
    result["settings"] = {"writers": WRITERS, "readers": READERS, "workers": 2, "tags": TAGS,
                          "steady_s": steady, "fault_s": fault, "short": args.short,
                          "server_tracebacks": errors, "sanic_shutdown_races": races, "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                          "commit": facts.commit()}
    if errors:
        result["problems"].append(f"the service logged {errors} tracebacks (see {logs / 'service.log'})")
    name = "chaos-short.json" if args.short else "chaos.json"
    (OUT / name).write_text(json.dumps(result, indent=1) + "\n")
    for row in result["phases"]:
        log(f"{row['phase']:>12}: writes {row['writes']:4} acked {row['acked']:4} lost {row['lost']} "
            f"503 {row['unavailable']} (landed {row['unavailable_landed']}) "
            f"no answer {row['indeterminate']} (landed {row['indeterminate_landed']}) "
            f"refused {row['refused']} stale reads {row['stale_reads']}/{row['reads']} "
            f"500s {row['status_500']} 503s {row['status_503']} recover {row['recover_s']} s")
    log(f"after healing: {result['final']}")
    if args.publish:
        publish_section(RESULTS_MD, CHAOS_TITLE, chaos_section(result))
    for problem in result["problems"]:
        log(f"MISSED: {problem}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
