"""create_app(settings): the Sanic application, its per-worker resources and its error mapping."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from types import SimpleNamespace
from typing import TypeAlias

from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse

from service import stack
from service.accounts import Accounts
from service.api import docs, health, tweets, users
from service.api.respond import raw
from service.cache.client import Breaker, create_client
from service.cache.local import LocalCache, listen
from service.cache.tags import TagCache
from service.codec import codec
from service.db.pool import UNAVAILABLE, create_pool
from service.errors import (
    DATABASE_DOWN,
    INVALID_TOKEN,
    USER_GONE,
    AppError,
    ServiceUnavailable,
    Unauthorized,
)
from service.security.passwords import Passwords
from service.security.tokens import Tokens
from service.settings import Settings, load_settings
from service.timeline import Slowdown, Timeline

App: TypeAlias = Sanic[Config, SimpleNamespace]
log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
BEARER = 'Bearer realm="simple-twitter"'


def create_app(settings: Settings) -> App:
    settings = settings.with_secret()
    json = codec(settings.use_orjson)
    app = Sanic("simple_twitter", dumps=json.dumps, loads=json.loads)
    app.config.update(
        REQUEST_MAX_SIZE=settings.request_max_size,
        ACCESS_LOG=settings.access_log,
        USE_UVLOOP=settings.use_uvloop,
        FALLBACK_ERROR_FORMAT="json",
        NOISY_EXCEPTIONS=False,
        REQUEST_TIMEOUT=settings.request_timeout,
        KEEP_ALIVE_TIMEOUT=settings.keep_alive_timeout,
    )
    app.ctx.settings = settings
    app.ctx.codec = json
    for bp in (users.bp, tweets.bp, health.bp, docs.bp):
        app.blueprint(bp)

    @app.before_server_start
    async def open_resources(app: App) -> None:
        database_url, redis_url = stack.urls(settings)
        ctx = app.ctx
        ctx.pool = await create_pool(settings, database_url)
        ctx.redis = create_client(settings, redis_url) if settings.cache_enabled else None
        cache = local = None
        ctx.listener = None
        if ctx.redis is not None:
            cache = TagCache(ctx.redis, settings.cache_prefix, settings.cache_ttl_seconds,
                             settings.cache_ttl_jitter, settings.cache_tag_size, settings.use_pipeline)
            if settings.local_cache_ttl > 0:
                local = LocalCache(settings.local_cache_ttl, settings.local_cache_size)
                ctx.listener = asyncio.get_running_loop().create_task(
                    listen(ctx.redis, cache.channel, local, settings.breaker_reset_seconds))
        ctx.local = local
        breaker = Breaker(settings.breaker_failures, settings.breaker_reset_seconds)
        ctx.passwords = Passwords(settings.hash_threads, settings.hash_queue, settings.hash_niceness)
        ctx.tokens = Tokens(settings.token_secret, settings.token_ttl_seconds, settings.token_cache_size)
        ctx.accounts = Accounts(ctx.pool, ctx.passwords, ctx.tokens, settings.db_acquire_timeout)
        ctx.timeline = Timeline(ctx.pool, json, cache, breaker, settings.use_singleflight,
                                settings.db_acquire_timeout, local, slowdown=Slowdown(
                                    settings.slowdown_hit_us, settings.slowdown_miss_us,
                                    settings.slowdown_bypass_us, settings.slowdown_post_us))
        ctx.request_ids = itertools.count(1)
        ctx.request_id_prefix = f"{os.getpid():x}"

    @app.after_server_stop
    async def close_resources(app: App) -> None:
        ctx = app.ctx
        await ctx.timeline.close()
        if ctx.listener is not None:
            ctx.listener.cancel()
        if ctx.redis is not None:
            await ctx.redis.aclose()
        await ctx.pool.close()
        ctx.passwords.close()

    async def add_request_id(request: Request, response: BaseHTTPResponse) -> None:
        incoming = request.headers.get("x-request-id")
        if incoming is None or not REQUEST_ID.fullmatch(incoming):
            incoming = f"{app.ctx.request_id_prefix}-{next(app.ctx.request_ids)}"
        response.headers["X-Request-ID"] = incoming

    app.register_middleware(add_request_id, "response")

    @app.exception(Exception)
    async def render_error(request: Request, exc: Exception) -> HTTPResponse:
        return error_response(app, exc)

    return app


def create_app_from_env() -> App:
    """Factory for Sanic's worker processes: each worker builds its app from the environment."""
    return create_app(load_settings())


def error_response(app: App, exc: BaseException) -> HTTPResponse:
    """Every error in one envelope: {"message", "code", "errors"?}. No stack traces leave."""
    headers: dict[str, str] = {}
    if isinstance(exc, UNAVAILABLE) and not isinstance(exc, SanicException):
        exc = ServiceUnavailable(message=DATABASE_DOWN)
    if isinstance(exc, AppError):
        status, body = exc.status, exc.body()
        if isinstance(exc, ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, Unauthorized):  # RFC 6750: say which scheme, and why a token failed
            invalid = exc.message in (INVALID_TOKEN, USER_GONE)
            headers["WWW-Authenticate"] = BEARER + (', error="invalid_token"' if invalid else "")
    elif isinstance(exc, SanicException):
        status = exc.status_code
        body = {"message": _sanic_message(exc), "code": _code(status)}
        headers.update(getattr(exc, "headers", None) or {})
    else:
        log.exception("unhandled error", exc_info=exc)
        status, body = 500, {"message": "Internal server error", "code": "internalError"}
    return raw(app.ctx.codec.dumps(body), status, headers)


CODES = {400: "badRequest", 401: "unauthorized", 404: "notFound", 405: "methodNotAllowed",
         408: "requestTimeout", 413: "payloadTooLarge", 503: "serviceUnavailable"}


def _code(status: int) -> str:
    return CODES.get(status, "badRequest" if status < 500 else "internalError")


def _sanic_message(exc: SanicException) -> str:
    if exc.status_code >= 500:
        return "Internal server error"
    return {404: "Not found", 405: "Method not allowed",
            413: "Request body too large"}.get(exc.status_code, str(exc) or "Bad request")
