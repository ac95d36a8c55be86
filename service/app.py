"""create_app(settings): the Sanic application, its per-worker resources and its error mapping."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import re
import resource
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeAlias

from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse

from service.api import docs, health, tweets, users
from service.api.respond import raw
from service.codec import codec
from service.errors import INTERNAL_ERROR, error_code, error_parts
from service.metrics import CONTENT_TYPE, FLUSH_SECONDS, Metrics
from service.resources import Resources, close_resources, open_resources
from service.settings import Settings

App: TypeAlias = Sanic[Config, SimpleNamespace]
log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def create_app(settings: Settings, served_by_guarded_protocol: bool = False) -> App:
    """The app for resolved settings (python -m ops run fills in the embedded stack's URLs and secret).
    `served_by_guarded_protocol`: `python -m service run` serves it with service/connections.py's
    protocol, which can finish responses itself (any other server, ASGI included, needs the
    middleware)."""
    settings.require_resolved()
    chosen = codec(settings.use_orjson)
    app = Sanic("simple_twitter", dumps=chosen.dumps, loads=chosen.loads)
    app.config.update(
        REQUEST_MAX_SIZE=settings.request_max_size,
        ACCESS_LOG=settings.access_log,
        USE_UVLOOP=settings.use_uvloop,
        FALLBACK_ERROR_FORMAT="json",
        NOISY_EXCEPTIONS=False,
        REQUEST_TIMEOUT=settings.request_timeout,
        KEEP_ALIVE_TIMEOUT=settings.keep_alive_timeout,
        WORKER_MAX_CONNECTIONS=connection_bound(settings.worker_max_connections),
    )
    app.ctx.settings = settings
    app.ctx.codec = chosen
    for bp in (users.bp, tweets.bp, health.bp, docs.bp):
        app.blueprint(bp)
    add_lifecycle(app, settings)
    metrics = add_metrics(app, settings) if settings.metrics_enabled else None
    app.ctx.metrics = metrics  # the protocol's fast path counts its answers there too
    # What the protocol's fast path answers (service/fastpath.py; __main__.protocol picks it)
    app.ctx.fast_hits = settings.fast_hits
    app.ctx.lean_search = settings.use_lean_search
    app.ctx.lean_post = settings.use_lean_post
    app.ctx.render_error = partial(error_response, app)  # the one rendering, the protocol's too
    # Every response finished as its head is written, by the protocol's Http (FINISH_IN_PROTOCOL,
    # service/connections.py), or by a response middleware, which costs every request Sanic's
    # middleware machinery on top (two signal dispatches and a coroutine).
    app.ctx.finish = finishing(app, metrics)
    if not (settings.finish_in_protocol and served_by_guarded_protocol):
        app.register_middleware(as_middleware(app.ctx.finish), "response")
        app.ctx.finish = None

    @app.exception(Exception)
    async def render_error(request: Request, exc: Exception) -> HTTPResponse:
        return error_response(app, exc)

    return app


def add_lifecycle(app: App, settings: Settings) -> None:
    """Each worker's resources opened before it serves and closed after; a drain before it stops."""

    @app.before_server_start
    async def open_worker_resources(app: App) -> None:
        res = await open_resources(settings)
        app.ctx.resources = res
        for field in dataclasses.fields(res):  # handlers read app.ctx.timeline, app.ctx.pool, ...
            setattr(app.ctx, field.name, getattr(res, field.name))
        app.ctx.request_id = RequestIds(f"{os.getpid():x}")
        app.ctx.stopping = False
        app.ctx.readiness = Readiness()
        if settings.workers > 1 and settings.restart_dead_workers:
            app.add_task(restart_dead_siblings(app, settings.post_deadline_ms / 1000),
                         name="restart_dead_siblings")

    @app.after_server_start
    async def watch_for_a_missed_stop(app: App) -> None:
        stop_when_told(app, time.monotonic() + STOP_WATCH_SECONDS)

    @app.before_server_stop
    async def drain(app: App) -> None:
        """Before the listening socket closes: keep serving for a moment, but close each
        connection after its response, so clients move off keep-alive connections while new
        ones are still accepted; then only connections with a request in flight remain.
        Behind a load balancer that checks /ready, the moment starts once /ready has answered
        503: until then the balancer still sends requests here, some on idle connections the
        close would cut (HAProxy drops its client's connection then, unanswered)."""
        app.ctx.stopping = True
        await app.ctx.readiness.balancer_told(BALANCER_WAIT_SECONDS)
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


class Readiness:
    """What this worker has told a load balancer through /ready: when it last asked, and whether
    it has been answered 503 since the worker began stopping."""

    __slots__ = ("asked_at", "told")

    def __init__(self) -> None:
        self.asked_at = float("-inf")
        self.told = asyncio.Event()

    def asked(self, stopping: bool) -> None:
        self.asked_at = time.monotonic()
        if stopping:
            self.told.set()

    async def balancer_told(self, wait: float) -> None:
        """Returns once a balancer checking /ready has been answered 503, at most `wait` seconds;
        at once where nothing asked /ready within `wait` seconds (no balancer checks it)."""
        if time.monotonic() - self.asked_at < wait:
            try:
                await asyncio.wait_for(self.told.wait(), wait)
            except TimeoutError:
                log.warning("drain: no /ready check within %g s; closing anyway", wait)


Finisher: TypeAlias = Callable[[Request, BaseHTTPResponse], None]


def finishing(app: App, metrics: Metrics | None) -> Finisher:
    """What every response gets once, as its head is written: the request id, the request
    counted and timed, and the connection closed after it while draining."""

    ctx = app.ctx

    def finish(request: Request, response: BaseHTTPResponse) -> None:
        headers = response.headers
        headers["X-Request-ID"] = ctx.request_id(request.headers.get("x-request-id"))
        if metrics is not None:
            # Counted by route pattern, method, status and cache outcome; timed from the arrival
            # of the request's last bytes (Sanic's protocol notes it for its own timeouts): no
            # request middleware, which alone cost the cached search 4%.
            arrived = getattr(getattr(request.stream, "protocol", None), "_time", None)
            route = request.route
            metrics.observe(route.path if route is not None else "unmatched", request.method, response.status,
                            None if arrived is None else time.monotonic() - arrived, headers.get("x-cache"))
        if ctx.stopping:
            # Shutting down: answer what is in flight, then close, so keep-alive clients stop
            # sending here; otherwise a busy connection is never idle and is cut off at the
            # graceful-shutdown deadline, requests and all.
            request.stream.keep_alive = False  # type: ignore[union-attr]

    return finish


def as_middleware(finish: Finisher) -> Callable[[Request, BaseHTTPResponse], Coroutine[Any, Any, None]]:
    """The same as a Sanic response middleware (FINISH_IN_PROTOCOL=false)."""

    async def middleware(request: Request, response: BaseHTTPResponse) -> None:
        finish(request, response)

    return middleware


class RequestIds:
    """X-Request-ID: the client's when it is a valid one, else this worker's next (pid-prefixed).
    One per worker, used by the framework path and the protocol's fast path alike."""

    __slots__ = ("_next", "_prefix")

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._next = itertools.count(1)

    def __call__(self, incoming: str | None) -> str:
        if incoming is None or not REQUEST_ID.fullmatch(incoming):
            return f"{self._prefix}-{next(self._next)}"
        return incoming


def add_metrics(app: App, settings: Settings) -> Metrics:
    """GET /metrics; each request counted and timed by its route's pattern and each search's cache
    outcome counted (service/metrics.py); this worker's gauges sampled and flushed every second."""
    folder = metrics_folder(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    metrics = Metrics(folder)

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
    async def serve_metrics(request: Request) -> HTTPResponse:
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

    return metrics


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
