"""The Sanic application in this process, against the real test PostgreSQL and Redis: handlers,
envelopes and the error mapping with no server process in between (413 and the deadlines belong
to the HTTP server: test_http.py). Driven through Sanic's ASGI interface: the lifespan protocol
runs the app's start and stop listeners once per test, so the worker's background tasks (the
invalidation feed and its heartbeat) run as in a served worker. (sanic-testing's clients start
and stop the app around every request, or pause its event loop between requests: either way a
worker's feed never counts as live, and every search bypasses.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from sanic import Sanic

from service.app import create_app
from service.context import App
from service.errors import INTERNAL_ERROR
from service.settings import Settings, SettingsError
from tests.conftest import unique

T = TypeVar("T")
pytestmark = pytest.mark.filterwarnings("ignore:You have set the USE_UVLOOP")  # ASGI: the test's own loop


@asynccontextmanager
async def served(app: App) -> AsyncIterator[httpx.AsyncClient]:
    """The app started through ASGI lifespan, an HTTP client over ASGI, the app stopped after."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await outbox.put(message)

    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                         inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        feed = app.ctx.resources.feed
        while feed is not None and not feed.trusted():  # as a served worker would, once subscribed
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://in-process") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan


def run(app: App, scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with served(app) as client:
            return await scenario(client)

    return asyncio.run(asyncio.wait_for(go(), 30))


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    name = unique("app_")
    r = await client.post("/api/v1/register", json={"username": name, "password": "in process 1",
                                                    "full_name": "Ä"})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/login", json={"username": name, "password": "in process 1"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def app(resolved: Settings) -> Iterator[App]:
    Sanic.test_mode = True  # several apps of the same name in one process
    app = create_app(resolved.replaced(cache_prefix=unique("app"),
                                         shutdown_drain_seconds=0))

    @app.get("/test/boom")
    async def boom(request: Any) -> None:
        raise RuntimeError("a programming error with a secret in it")

    yield app
    Sanic.test_mode = False


def test_post_then_search_miss_then_hit(app: App) -> None:
    async def scenario(client: httpx.AsyncClient) -> tuple[Any, list[httpx.Response]]:
        auth = await login(client)
        tag = unique("inproc_ü")
        r = await client.post("/api/v1/tweet", json={"msg": f"héllo #{tag}"}, headers=auth)
        assert r.status_code == 201, r.text
        return r.json(), [await client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
                          for _ in range(2)]

    posted, searches = run(app, scenario)
    assert posted["code"] == "success" and posted["data"]["tags"][0].startswith("inproc_ü")
    for r in searches:
        assert r.status_code == 200
        assert r.json()["data"] == [posted["data"]]
        assert r.json()["pagination"] == {"total": 1, "page": 1, "page_size": 10}
    assert [r.headers["x-cache"] for r in searches] == ["MISS", "HIT"]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [
    ("GET", "/api/v1/search-tweets?tag=a", {}, 401, "unauthorized"),
    ("POST", "/api/v1/register", {"content": b"{not json"}, 400, "badRequest"),
    ("POST", "/api/v1/register", {"json": {"username": "x\u0000y", "password": "p" * 10}}, 400, "badRequest"),
    ("GET", "/nowhere", {}, 404, "notFound"),
    ("DELETE", "/api/v1/register", {}, 405, "methodNotAllowed"),
    ("POST", "/api/v1/tweet", {"json": {"msg": "no token"}}, 401, "unauthorized"),
    ("POST", "/api/v1/login", {"json": ["not", "an", "object"]}, 400, "badRequest"),
])
def test_bad_requests_get_a_json_error(app: App, method: str, path: str, kwargs: dict[str, Any],
                                       status: int, code: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        return await client.request(method, path, **kwargs)

    r = run(app, scenario)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert isinstance(r.json()["message"], str) and r.json()["message"]
    assert r.headers["content-type"] == "application/json"


def test_a_search_with_a_bad_parameter_names_it(app: App) -> None:
    queries = {"tag": "page=1", "page": "tag=a&page=0", "page_size": "tag=a&page_size=x",
               "before_id": "tag=a&before_id="}

    async def scenario(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        auth = await login(client)
        return {field: await client.get(f"/api/v1/search-tweets?{q}", headers=auth)
                for field, q in queries.items()}

    for field, r in run(app, scenario).items():
        assert r.status_code == 400
        assert list(r.json()["errors"]) == [field]


def test_an_unexpected_error_is_a_500_without_details_and_logged(
        app: App, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/test/boom")

    with caplog.at_level(logging.ERROR, logger="service.app"):
        r = run(app, scenario)
    assert (r.status_code, r.json()) == (500, INTERNAL_ERROR)
    assert "secret" not in r.text
    assert any("a programming error" in str(rec.exc_info) for rec in caplog.records)


def test_request_ids_are_echoed_when_well_formed(app: App) -> None:
    async def scenario(client: httpx.AsyncClient) -> list[str]:
        return [(await client.get("/ping", headers={"X-Request-ID": rid})).headers["x-request-id"]
                for rid in ("abc-123", "bad id with spaces")]

    good, bad = run(app, scenario)
    assert good == "abc-123"
    assert bad != "bad id with spaces" and bad


def test_the_app_refuses_unresolved_settings(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        create_app(settings)
