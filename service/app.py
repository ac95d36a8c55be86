"""create_app(settings): the Sanic application, its per-worker resources and its error mapping."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import sanic
from sanic import HTTPResponse, Sanic
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse

from service.api import docs, health, tweets, users
from service.api.respond import raw
from service.codec import codec
from service.context import App, AppRequest, WorkerContext
from service.db import pool
from service.errors import INTERNAL_ERROR, error_code, error_parts
from service.http import sanic_side
from service.http.routes import front_routes
from service.http.writer import Responses
from service.metrics import CONTENT_TYPE, FLUSH_SECONDS, Metrics
from service.resources import Resources, close_resources, open_resources, settle
from service.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, served_by_front: bool = False) -> App:
    """The app for resolved settings (python -m ops run fills in the embedded stack's URLs and secret).
    `served_by_front`: `python -m service run` serves it with service/http/protocol.py, whose Http
    finishes responses itself (any other server, ASGI included, needs the middleware)."""
    settings.require_resolved()
    chosen = codec(settings.tuning.use_orjson)
    metrics = metrics_of(settings) if settings.metrics_enabled else None
    responses = Responses(metrics, f"{os.getpid():x}")
    in_protocol = settings.tuning.finish_in_protocol and served_by_front
    ctx = WorkerContext(settings, chosen, responses, lambda exc: error_response(app, exc),
                        responses.finish_sanic if in_protocol else None)
    app: App = Sanic("simple_twitter", ctx=ctx, dumps=chosen.dumps, loads=chosen.loads)
    app.config.update(
        REQUEST_MAX_SIZE=settings.http.request_max_size,
        ACCESS_LOG=settings.http.access_log,
        USE_UVLOOP=settings.tuning.use_uvloop,
        FALLBACK_ERROR_FORMAT="json",
        NOISY_EXCEPTIONS=False,
        REQUEST_TIMEOUT=settings.http.request_timeout,
        KEEP_ALIVE_TIMEOUT=settings.http.keep_alive_timeout,
        WORKER_MAX_CONNECTIONS=connection_bound(settings.http.worker_max_connections),
    )
    for bp in (users.bp, tweets.bp, health.bp, docs.bp):
        app.blueprint(bp)
    add_lifecycle(app, settings)
    if metrics is not None:
        add_metrics(app, metrics)
    if not in_protocol:  # a response middleware finishes each: Sanic's middleware machinery on top
        app.register_middleware(as_middleware(responses), "response")

    @app.exception(Exception)
    async def render_error(request: AppRequest, exc: Exception) -> HTTPResponse:
        return error_response(app, exc)

    return app


def internals(settings: Settings, sanic_version: str = sanic.__version__,
              asyncpg_version: str = asyncpg.__version__) -> Settings:
    """The settings to serve with on the installed Sanic and asyncpg: the front (which reads Sanic's
    private state: service/http/sanic_side.py) and the lean pool (asyncpg's: service/db/pool.py)
    only on the versions they were written and tested against; on any other, plain Sanic and
    asyncpg, still correct, said in one warning line."""
    changes: dict[str, bool] = {}
    if not sanic_side.supported(sanic_version):
        changes.update(use_fast_hits=False, use_lean_search=False, use_lean_post=False,
                       finish_in_protocol=False)
    if not pool.supported(asyncpg_version):
        changes.update(use_lean_pool=False, use_deadline_watch=False)
    if changes:
        log.warning("sanic %s (front written for %s), asyncpg %s (lean pool for %s): serving without %s",
                    sanic_version, "/".join(sanic_side.TESTED), asyncpg_version, "/".join(pool.TESTED),
                    ", ".join(name.upper() for name in changes))
    return settings.replaced(**changes)


def add_lifecycle(app: App, settings: Settings) -> None:
    """Each worker's resources opened before it serves and closed after; a drain before it stops."""

    @app.before_server_start
    async def open_worker_resources(app: App) -> None:
        res = await open_resources(settings)
        app.ctx.opened = res
        app.ctx.routes = front_routes(res.timeline, res.codec.loads, settings.fast_hits,
                                      settings.tuning.use_lean_search, settings.tuning.use_lean_post)
        if settings.workers > 1 and settings.restart_dead_workers:
            app.add_task(restart_dead_siblings(app, settings.post_deadline_ms / 1000),
                         name="restart_dead_siblings")

    @app.after_server_start
    async def watch_for_a_missed_stop(app: App) -> None:
        stop_when_told(app, time.monotonic() + STOP_WATCH_SECONDS)

    @app.after_server_start
    async def freeze_start_up(app: App) -> None:
        settle(settings)

    @app.before_server_stop
    async def drain(app: App) -> None:
        """Before the listening socket closes: keep serving for a moment, but close each
        connection after its response, so clients move off keep-alive connections while new
        ones are still accepted; then only connections with a request in flight remain.
        Behind a load balancer that checks /ready, the moment starts once /ready has answered
        503: until then the balancer still sends requests here, some on idle connections the
        close would cut (HAProxy drops its client's connection then, unanswered)."""
        app.ctx.stopping = True
        if not await app.ctx.readiness.balancer_told(BALANCER_WAIT_SECONDS):
            log.warning("drain: no /ready check within %g s; closing anyway", BALANCER_WAIT_SECONDS)
        await asyncio.sleep(settings.shutdown_drain_seconds)

    @app.after_server_stop
    async def close_worker_resources(app: App) -> None:
        await close_resources(app.ctx.resources)


def stop_when_told(app: App, until: float) -> None:
    """Sanic's worker can miss its main process's stop during start-up: a SIGINT before it
    handles signals, or one its handler drops (the app not serving yet), or a loop stop that
    uvloop forgets once run_forever begins; it then serves until killed. Its manager's word
    (TERMINATED) stays, so for a while after the start, look at it now and then, and stop
    (again) while it says so and the drain has not begun. See also service/manager.py."""
    if app.ctx.stopping:
        return
    told = hasattr(app, "multiplexer") and app.m.state.get("state") == "TERMINATED"
    if told:
        log.warning("a stop missed during start-up: stopping")
        app.stop(terminate=False)
    if told or time.monotonic() < until:
        asyncio.get_running_loop().call_later(RESTOP_SECONDS, stop_when_told, app, until)


RESTOP_SECONDS = 0.25  # how often a starting worker looks for a stop it missed, for STOP_WATCH_SECONDS
STOP_WATCH_SECONDS = 10.0
BALANCER_WAIT_SECONDS = 5.0  # a balancer that asked /ready this recently is waited for, this long


Middleware = Callable[[AppRequest, BaseHTTPResponse], Coroutine[Any, Any, None]]


def as_middleware(responses: Responses) -> Middleware:
    """Each response finished by a Sanic response middleware (FINISH_IN_PROTOCOL=false, or a server
    other than the front's protocol)."""

    async def middleware(request: AppRequest, response: BaseHTTPResponse) -> None:
        response.headers["X-Request-ID"] = responses.finish_sanic(request, response)

    return middleware


def metrics_of(settings: Settings) -> Metrics:
    folder = metrics_folder(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Metrics(folder)


def add_metrics(app: App, metrics: Metrics) -> None:
    """GET /metrics; each request counted and timed by its route's pattern and each search's cache
    outcome counted (service/metrics.py); this worker's gauges sampled and flushed every second."""

    def sample(res: Resources) -> None:
        metrics.gauges.update({
            "db_pool_connections": res.pool.get_size(),
            "db_pool_connections_idle": res.pool.get_idle_size(),
            "db_pool_waiting": res.db_stats.waiting,
            "redis_breaker_open_workers": 1 if res.timeline.breaker_open else 0,
            "local_cache_bytes": res.local.bytes if res.local is not None else 0})
        metrics.totals.update({"db_pool_acquires": res.db_stats.acquires,
                               "db_pool_wait_seconds": res.db_stats.wait_seconds,
                               "db_replica_reads": res.db_stats.replica_reads,
                               "db_replica_behind_reads": res.db_stats.replica_behind_reads,
                               "fast_hits": metrics.fast_hits, "lean_searches": metrics.lean_searches,
                               "lean_posts": metrics.lean_posts,
                               "posts_batched": res.timeline.posts_batched,
                               "posts_answered_late": res.timeline.posts_answered_late})

    @app.get("/metrics")
    async def serve_metrics(request: AppRequest) -> HTTPResponse:
        sample(request.app.ctx.resources)
        return HTTPResponse(metrics.render(), content_type=CONTENT_TYPE)

    async def flush_every_second(app: App) -> None:
        while True:
            sample(app.ctx.resources)
            metrics.flush()
            await asyncio.sleep(FLUSH_SECONDS)

    @app.after_server_start
    async def start_flushing(app: App) -> None:
        app.add_task(flush_every_second(app), name="metrics_flush")


def connection_bound(wanted: int, reserve: int = 256) -> int:
    """At most the open-file limit less a reserve for the pools, Redis and files: past it,
    accept() would fail with EMFILE instead of the bound answering."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return wanted if soft == resource.RLIM_INFINITY else max(1, min(wanted, soft - reserve))


def metrics_folder(settings: Settings) -> Path:
    """Where the workers of the service on settings.port write their metrics (emptied at start)."""
    return settings.worker_files()


async def restart_dead_siblings(app: App, post_deadline: float) -> None:
    """Sanic's manager marks a server worker that died (killed, out of memory) FAILED and carries
    on with fewer: the first live worker (by name) asks it to start that one again. The dead one
    may have committed posts without updating the cache: the restarter repairs as after a Redis
    outage, invalidating every tag posted to since the longest a post can take before now."""
    me = app.m.name
    while True:
        await asyncio.sleep(1.0)
        try:
            servers = {name: w for name, w in app.m.workers.items() if w.get("server")}
        except Exception:  # noqa: S112 (the manager is shutting down)
            continue
        dead = sorted(n for n, w in servers.items() if w.get("state") == "FAILED")
        alive = sorted(n for n, w in servers.items() if w.get("state") in ("ACKED", "STARTED", "JOINED"))
        if dead and alive and alive[0] == me:
            app.ctx.timeline.mark_dirty(datetime.now(UTC) - timedelta(seconds=post_deadline))
            for name in dead:
                log.warning("worker %s died: starting it again, repairing the cache", name)
                app.m.restart(name)
            await asyncio.sleep(5.0)  # let it come up before looking again


def error_response(app: App, exc: BaseException) -> HTTPResponse:
    """Every error in one envelope: {"message", "code", "errors"?}. No stack traces leave."""
    headers: dict[str, str] = {}
    parts = None if isinstance(exc, SanicException) else error_parts(exc)
    if parts is not None:
        status, body, headers = parts
    elif isinstance(exc, SanicException):
        status = exc.status_code
        body = {"message": _sanic_message(exc), "code": error_code(status)}
        headers.update(getattr(exc, "headers", None) or {})
    else:
        log.exception("unhandled error", exc_info=exc)
        status, body = 500, INTERNAL_ERROR
    return raw(app.ctx.codec.dumps(body), status, headers)


def _sanic_message(exc: SanicException) -> str:
    if exc.status_code >= 500:
        return "Internal server error"
    return {404: "Not found", 405: "Method not allowed",
            413: "Request body too large"}.get(exc.status_code, str(exc) or "Bad request")
