"""A peer stack: BlackSheep on uvicorn (uvloop + httptools) serving search, post and the floor route
through the project's own timeline, token and validation code, with the same settings. Only the web
framework differs from the service, as with the FastAPI peer.

Run: uvicorn bench.peers.blacksheep_app:app --loop uvloop --http httptools --port 2091
"""

from __future__ import annotations

from typing import Any

from blacksheep import Application, Content, Request, Response

from ops import stack
from service import validate
from service.errors import INTERNAL_ERROR, error_parts, success
from service.resources import Resources, close_resources, open_resources, settle
from service.settings import load_settings

JSON = b"application/json"
app = Application()
held: dict[str, Resources] = {}


def res() -> Resources:
    return held["res"]


async def start(_: Application) -> None:
    settings = stack.resolve(load_settings())
    held["res"] = await open_resources(settings)
    settle(settings)  # as ours does once it serves: the same process tuning on both


async def stop(_: Application) -> None:
    await close_resources(held.pop("res"))


app.on_start += start
app.on_stop += stop


@app.exception_handler(Exception)
async def error(_: Application, request: Request, exc: Exception) -> Response:
    """The service's own mapping (service.errors.error_parts), so both stacks answer alike."""
    status, body, headers = error_parts(exc) or (500, INTERNAL_ERROR, {})
    return Response(status, [(k.encode(), v.encode()) for k, v in headers.items()],
                    Content(JSON, res().codec.dumps(body)))


def header(request: Request, name: bytes) -> str | None:
    value = request.get_first_header(name)
    return None if value is None else value.decode("latin-1")


@app.router.get("/ping")
async def ping() -> Response:
    return Response(200, None, Content(JSON, res().codec.dumps({"pong": True})))


@app.router.get("/api/v1/search-tweets")
async def search(request: Request) -> Response:
    r = res()
    r.tokens.identify(header(request, b"authorization"))
    query = validate.search_query_string(request.url.query.decode("latin-1") if request.url.query else "")
    body, cache_state = await r.timeline.search(query)
    return Response(200, [(b"x-cache", cache_state.encode())], Content(JSON, body))


@app.router.post("/api/v1/tweet")
async def post(request: Request) -> Response:
    r = res()
    user = r.tokens.identify(header(request, b"authorization"))
    body: Any = await request.read()
    new = validate.new_tweet(validate.json_object(body or b"", r.codec.loads))
    return Response(201, None, Content(JSON, success(await r.timeline.post(user, new))))
