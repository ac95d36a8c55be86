"""The chaos run's load: writers and readers recording every outcome, and the state after healing
read back from PostgreSQL and through the API."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from service.errors import NOT_YET_SHOWN, WRITE_UNKNOWN

WRITERS, READERS, TAGS = 4, 4, 4
# Seconds a request is waited for: past the service's own deadlines for PostgreSQL (a connection
# DB_ACQUIRE_TIMEOUT, then DB_COMMAND_TIMEOUT), so a database cut off mid-request is answered by the
# service (503) and not given up on by the client.
CLIENT_TIMEOUT = 10
# How a 503 says the write may have landed (the connection lost after it was sent), or did (the
# caches could not be told of it).
MAY_HAVE_LANDED = (WRITE_UNKNOWN.split(":")[0], NOT_YET_SHOWN.split(":")[0])
MIN_SUCCESSES = 20  # acknowledged writes, and successful reads, in every phase


@dataclass
class Write:
    writer: int
    marker: str
    tags: list[str]
    start: float
    end: float = 0.0
    outcome: str = ""  # acked | refused | unavailable (5xx) | indeterminate (no answer, or unknown)
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
    """One fault (or the steady start): when it began, was healed and ended."""

    name: str
    start: float
    healed: float = 0.0
    end: float = 0.0


class Load:
    """Concurrent writers and readers on a few shared tags until stop is set."""

    def __init__(self, url: str, run_id: str) -> None:
        self.url = url
        self.run_id = run_id
        self.tags = [f"chaos{run_id}t{i}" for i in range(TAGS)]
        self.writes: list[Write] = []
        self.reads: list[Read] = []
        self.stop = asyncio.Event()
        self.loading = asyncio.Event()  # every writer and reader logged in: the load begins

    def enough_since(self, start: float) -> bool:
        """Whether MIN_SUCCESSES writes were acknowledged and reads answered 200 among those begun
        since start."""
        acked = sum(1 for w in self.writes if w.start >= start and w.outcome == "acked")
        read = sum(1 for r in self.reads if r.start >= start and r.status == "200")
        return acked >= MIN_SUCCESSES and read >= MIN_SUCCESSES

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
        async with httpx.AsyncClient(base_url=self.url, timeout=CLIENT_TIMEOUT) as client:
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
                        # A 503 means not written, unless the service says it may have landed
                        # (its outcome unknown, like no answer at all): whether each landed is
                        # looked up at the end, and judged.
                        w.outcome = "refused" if r.status_code < 500 else \
                            "indeterminate" if any(m in r.text for m in MAY_HAVE_LANDED) else "unavailable"
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
        async with httpx.AsyncClient(base_url=self.url, timeout=CLIENT_TIMEOUT) as client:
            while not self.stop.is_set():
                read = Read(rng.choice(self.tags), time.monotonic())
                try:
                    r = await client.get("/api/v1/search-tweets", headers=auth,
                                         params={"tag": read.tag, "page_size": 100})
                    read.status = str(r.status_code)
                    read.worker = r.headers.get("x-request-id", "").split("-")[0]
                    if r.status_code == 200:
                        page = r.json()
                        read.total = page["pagination"]["total"]
                        read.ids = [t["id"] for t in page["data"]]
                        read.cache = r.headers.get("x-cache", "")
                    read.retry_after = r.status_code != 503 or "retry-after" in r.headers
                except httpx.TransportError as exc:
                    read.status = type(exc).__name__
                read.end = time.monotonic()
                self.reads.append(read)
                await asyncio.sleep(0.01)

    async def run(self) -> None:
        """Every writer and reader, each logged in as a user of its own, until stop is set."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            auths = [await self.login(client, f"chaos{self.run_id}u{i}") for i in range(WRITERS + READERS)]
        self.loading.set()
        await asyncio.gather(*(self.writer(i, auths[i]) for i in range(WRITERS)),
                             *(self.reader(i, auths[WRITERS + i]) for i in range(READERS)))

    async def final_state(self, dsn: str) -> dict[str, Any]:
        """What landed in PostgreSQL and what a search shows, per tag, once every fault is healed."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            auth = await self.login(client, f"chaos{self.run_id}check")
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
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
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
