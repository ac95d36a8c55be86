"""Shared fixtures: a private test stack (real PostgreSQL and Redis) and real service processes."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
import redis

from ops import stack
from ops.process import ServiceProcess
from service.db.migrate import migrate
from service.settings import Settings

TEST_SECRET = "test-secret-" + "x" * 40
TEST_ENV = {
    "ENV": "test",
    **stack.named_env("test"),
    "DATABASE_URL": "",
    "REDIS_URL": "",
    "TOKEN_SECRET": TEST_SECRET,
    "HOST": "127.0.0.1",
    "BREAKER_RESET_SECONDS": "0.5",
    "WORKERS": "1",  # one unless a test asks for more (the default is one per CPU)
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env(TEST_ENV)


@pytest.fixture(scope="session")
def urls(settings: Settings) -> tuple[str, str]:
    stack.up(settings)
    asyncio.run(migrate(stack.urls(settings)[0]))
    return stack.urls(settings)


@pytest.fixture(scope="session")
def resolved(settings: Settings, urls: tuple[str, str]) -> Settings:
    """The test stack's settings as a started service has them (URLs filled in)."""
    return stack.resolve(settings)


class Server(ServiceProcess):
    """The service on a free port with the test stack's settings, started at once."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        super().__init__({**TEST_ENV, **env, "PORT": str(self.port)}, log)
        self.start()


def start_server(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory, **env: str) -> Server:
    return Server(env, tmp_path_factory.mktemp("server") / "server.log")


@pytest.fixture(scope="session")
def server(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(urls, tmp_path_factory)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def worker_of(response: httpx.Response) -> str:
    """The worker process that answered (X-Request-ID's prefix: its pid in hex)."""
    return response.headers["x-request-id"].split("-")[0]


def from_every_worker(request: Callable[[], httpx.Response], workers: int = 2, each: int = 3,
                      tries: int = 400) -> list[httpx.Response]:
    """Responses to `request` (a new connection each) until every one of `workers` processes has
    answered at least `each`: a check of what two workers agree on fails, rather than passes,
    when one worker took every request."""
    seen: Counter[str] = Counter()
    answers = []
    for _ in range(tries):
        r = request()
        answers.append(r)
        seen[worker_of(r)] += 1
        if len(seen) >= workers and all(n >= each for n in seen.values()):
            return answers
    raise AssertionError(f"workers {dict(seen)} answered {tries} requests: not all {workers} took part")


def wait_until(check: Callable[[], bool], seconds: float = 30, what: str = "the condition") -> None:
    """Poll until check() holds; fail after a generous deadline (never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {seconds} s")
        time.sleep(0.05)


@dataclass(frozen=True)
class RedisUser:
    """An ACL user of its own on the test stack's Redis (deleted after the test): its URL, and the
    default user's client to change its rights with."""

    name: str
    url: str
    admin: redis.Redis


@pytest.fixture
def redis_user(urls: tuple[str, str]) -> Iterator[RedisUser]:
    admin = redis.Redis.from_url(urls[1])
    name, password = unique("cache-user-"), secrets.token_urlsafe(16)
    admin.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                      commands=["+@all"])
    parts = urlsplit(urls[1])
    url = urlunsplit(parts._replace(netloc=f"{quote(name)}:{quote(password)}@{parts.hostname}:{parts.port}"))
    try:
        yield RedisUser(name, url, admin)
    finally:
        admin.acl_deluser(name)
        admin.close()


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def register_and_login(client: httpx.Client) -> tuple[str, dict[str, str]]:
    name = unique("user_")
    r = client.post("/api/v1/register", json={"username": name, "password": "correct horse 1",
                                              "full_name": "Test User"})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/login", json={"username": name, "password": "correct horse 1"})
    assert r.status_code == 200, r.text
    return name, {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def auth(client: httpx.Client) -> dict[str, str]:
    return register_and_login(client)[1]


def tag_ids(client: httpx.Client, tag: str, auth: dict[str, str]) -> set[int]:
    """Every tweet id of a tag, read page by page through the API (keyset: before_id)."""
    ids: set[int] = set()
    before = None
    while True:
        params: dict[str, str | int] = {"tag": tag, "page_size": 100}
        if before:
            params["before_id"] = before
        page = client.get("/api/v1/search-tweets", params=params, headers=auth).json()["data"]
        if not page:
            return ids
        ids.update(t["id"] for t in page)
        before = page[-1]["id"]


async def post_while_locked(database_url: str, service_url: str, auth: dict[str, str],
                            tag: str) -> tuple[httpx.Response, int]:
    """A post while another session holds the lock every post waits on: its answer, and how many
    tweets of the tag were written."""
    import asyncpg

    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE tags IN EXCLUSIVE MODE")  # posts wait on it
            async with httpx.AsyncClient(base_url=service_url, timeout=10) as c:
                r = await c.post("/api/v1/tweet", json={"msg": f"#{tag} held"}, headers=auth)
        return r, await blocker.fetchval("SELECT count(*) FROM tweets WHERE $1 = ANY(tags)", tag)
    finally:
        await blocker.close()
