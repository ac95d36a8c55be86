"""The peer stack: FastAPI on uvicorn (uvloop + httptools) serving search, post and the floor
route through the project's own data and cache code (service.timeline), with the same
settings. Only the web framework differs, so the comparison isolates it.

Run: uvicorn bench.peers.fastapi_app:app --loop uvloop --http httptools --port 2091
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from ops import stack
from service import validate
from service.errors import INTERNAL_ERROR, error_parts, success
from service.resources import close_resources, open_resources, settle
from service.settings import load_settings

JSON = "application/json"
state: dict[str, object] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = stack.resolve(load_settings())
    res = await open_resources(settings)
    settle(settings)  # as ours does once it serves: the same process tuning on both
    state["codec"], state["tokens"], state["timeline"] = res.codec, res.tokens, res.timeline
    try:
        yield
    finally:
        await close_resources(res)


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@app.exception_handler(Exception)
async def error(request: Request, exc: Exception) -> Response:
    """The service's own mapping (service.errors.error_parts), so both stacks answer alike."""
    status, body, headers = error_parts(exc) or (500, INTERNAL_ERROR, {})
    return Response(state["codec"].dumps(body), status_code=status, headers=headers, media_type=JSON)  # type: ignore[attr-defined]


@app.get("/ping")
async def ping() -> Response:
    return Response(state["codec"].dumps({"pong": True}), media_type=JSON)  # type: ignore[attr-defined]


@app.get("/api/v1/search-tweets")
async def search(request: Request) -> Response:
    state["tokens"].identify(request.headers.get("authorization"))  # type: ignore[attr-defined]
    query = validate.search_query_string(request.url.query)
    body, cache_state = await state["timeline"].search(query)  # type: ignore[attr-defined]
    return Response(body, media_type=JSON, headers={"X-Cache": cache_state})


@app.post("/api/v1/tweet")
async def post(request: Request) -> Response:
    user = state["tokens"].identify(request.headers.get("authorization"))  # type: ignore[attr-defined]
    new = validate.new_tweet(validate.json_object(await request.body(), state["codec"].loads))  # type: ignore[attr-defined]
    tweet = await state["timeline"].post(user, new)  # type: ignore[attr-defined]
    return Response(success(tweet), status_code=201, media_type=JSON)
