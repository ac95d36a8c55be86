"""Liveness and dependencies: 200 while PostgreSQL answers, 503 when it does not or while the
worker is shutting down (so a load balancer stops sending to it during the drain)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sanic import Blueprint, HTTPResponse

from service.api.respond import raw, reply

if TYPE_CHECKING:
    from service.context import AppRequest

log = logging.getLogger(__name__)
bp = Blueprint("health")
PROBE_TIMEOUT = 1.0
PONG = b'{"pong":true}'  # what either codec writes for {"pong": true}, written once


@bp.head("/health", name="health_head")
@bp.get("/health")
async def health(request: AppRequest) -> HTTPResponse:
    ctx = request.app.ctx
    postgres = redis = "down"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with ctx.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        postgres = "up"
    except Exception as exc:  # any failure means "down"; the body says so
        log.debug("health: postgres down: %r", exc)
    if ctx.redis is None:
        redis = "disabled"
    else:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await ctx.redis.ping()
            redis = "up"
        except Exception as exc:
            log.debug("health: redis down: %r", exc)
    status = "ok" if postgres == "up" and redis in ("up", "disabled") else "degraded"
    if ctx.stopping:
        status = "stopping"
    body = {"status": status, "postgres": postgres, "redis": redis,
            "cache": "bypass" if ctx.timeline.dirty else "on" if ctx.redis is not None else "off"}
    return reply(request, body, 200 if postgres == "up" and not ctx.stopping else 503)


@bp.head("/ready", name="ready_head")
@bp.get("/ready")
async def ready(request: AppRequest) -> HTTPResponse:
    """Should a load balancer send requests here? 200 until this worker starts shutting down, 503
    during its drain (which lasts until a balancer checking here has heard it). Not tied to
    PostgreSQL: every instance shares it, so taking them all out of rotation during an outage
    would only turn each one's own JSON 503 into the balancer's."""
    request.app.ctx.readiness.asked(request.app.ctx.stopping)
    if request.app.ctx.stopping:
        return reply(request, {"ready": False, "status": "stopping"}, 503)
    return reply(request, {"ready": True})


@bp.head("/ping", name="ping_head")
@bp.get("/ping")
async def ping(request: AppRequest) -> HTTPResponse:
    """A constant small body: the floor that other endpoints are measured against."""
    return raw(PONG)
