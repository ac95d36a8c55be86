"""What a worker's handlers and its front read (app.ctx): made with the app, its resources opened
as the worker starts (service/app.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from sanic import HTTPResponse, Request, Sanic
from sanic.config import Config

from service.codec import Codec
from service.http.routes import Answer, Table
from service.http.writer import Responses, fields_of

if TYPE_CHECKING:
    import redis.asyncio as redis
    from redis.asyncio import RedisCluster

    from service.accounts import Accounts
    from service.http.sanic_side import Finish
    from service.resources import Resources
    from service.security.tokens import Tokens
    from service.settings import Settings
    from service.timeline import Timeline


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

    async def balancer_told(self, wait: float) -> bool:
        """True once a balancer checking /ready has been answered 503, waiting at most `wait`
        seconds; at once where nothing asked /ready within `wait` seconds (no balancer checks it)."""
        if time.monotonic() - self.asked_at < wait:
            try:
                await asyncio.wait_for(self.told.wait(), wait)
            except TimeoutError:
                return False
        return True


@dataclass(slots=True, eq=False)
class WorkerContext:
    settings: Settings
    codec: Codec
    responses: Responses  # request ids, every response's head, counts and the drain
    render_error: Callable[[BaseException], HTTPResponse]  # the one error rendering (app.error_response)
    finish: Finish | None  # what the protocol's Http calls as a head is written (None: a middleware does)
    readiness: Readiness = field(default_factory=Readiness)
    routes: Table | None = None  # what the front answers (service/http/routes.py), once opened
    opened: Resources | None = None  # set as the worker starts

    @property
    def stopping(self) -> bool:
        return self.responses.stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self.responses.stopping = value

    @property
    def resources(self) -> Resources:
        if self.opened is None:
            raise RuntimeError("the worker's resources are not open yet")
        return self.opened

    @property
    def timeline(self) -> Timeline:
        return self.resources.timeline

    @property
    def tokens(self) -> Tokens:
        return self.resources.tokens

    @property
    def accounts(self) -> Accounts:
        return self.resources.accounts

    @property
    def pool(self) -> asyncpg.Pool:
        return self.resources.pool

    @property
    def redis(self) -> redis.Redis | RedisCluster | None:
        return self.resources.redis

    def error_answer(self, exc: BaseException) -> Answer:
        """An error of a front coroutine, rendered as Sanic's handlers' errors are."""
        res = self.render_error(exc)
        return res.status, res.body or b"", fields_of(res.headers) or b"", None


App: TypeAlias = Sanic[Config, WorkerContext]
AppRequest: TypeAlias = Request[App, Any]  # handlers' requests: request.app.ctx is a WorkerContext
