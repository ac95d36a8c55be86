"""The peer stack: FastAPI on uvicorn (uvloop + httptools) serving search, post and the floor
route through the project's own data and cache code (service.timeline), with the same
settings. Only the web framework differs, so the comparison isolates it.

Run: uvicorn bench.peers.fastapi_app:app --loop uvloop --http httptools --port 2091
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from service import stack, validate
from service.cache.client import Breaker, create_client
from service.cache.local import LocalCache, listen
from service.cache.tags import TagCache
from service.codec import codec
from service.db.pool import create_pool
from service.errors import AppError
from service.security.tokens import Tokens
from service.settings import load_settings
from service.timeline import Timeline

JSON = "application/json"
state: dict[str, object] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings().with_secret()
    database_url, redis_url = stack.urls(settings)
    json = codec(settings.use_orjson)
    pool = await create_pool(settings, database_url)
    client = create_client(settings, redis_url) if settings.cache_enabled else None
    cache = local = listener = None
    if client is not None:
        cache = TagCache(client, settings.cache_prefix, settings.cache_ttl_seconds,
                         settings.cache_ttl_jitter, settings.cache_tag_size, settings.use_pipeline)
        if settings.local_cache_ttl > 0:
            local = LocalCache(settings.local_cache_ttl, settings.local_cache_size)
            listener = asyncio.create_task(listen(client, cache.channel, local, settings.breaker_reset_seconds))
    state["codec"] = json
    state["tokens"] = Tokens(settings.token_secret, settings.token_ttl_seconds, settings.token_cache_size)
    state["timeline"] = Timeline(pool, json, cache, Breaker(settings.breaker_failures,
                                                            settings.breaker_reset_seconds),
                                 settings.use_singleflight, settings.db_acquire_timeout, local)
    yield
    if listener is not None:
        listener.cancel()
    await pool.close()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@app.exception_handler(AppError)
async def app_error(request: Request, exc: AppError) -> Response:
    return Response(state["codec"].dumps(exc.body()), status_code=exc.status, media_type=JSON)  # type: ignore[attr-defined]


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
    return Response(b'{"data":' + tweet + b',"code":"success"}', status_code=201, media_type=JSON)
