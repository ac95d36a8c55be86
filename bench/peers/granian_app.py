"""A peer stack: Granian (a Rust HTTP server) calling a plain RSGI app that serves search, post and the
floor route through the project's own timeline, token and validation code, with the same settings.
Only the web layer differs from the service, as with the FastAPI peer.

Run: granian --interface rsgi --loop uvloop bench.peers.granian_app:app --port 2091
"""

from __future__ import annotations

import asyncio
from typing import Any

from granian._granian import RSGIHTTPProtocol as HTTPProtocol
from granian.rsgi import Scope

from ops import stack
from service import validate
from service.errors import INTERNAL_ERROR, error_parts, success
from service.resources import Resources, close_resources, open_resources, settle
from service.settings import load_settings

JSON = [("content-type", "application/json")]


class App:
    """The RSGI app: one per worker process, its resources opened before Granian serves."""

    def __init__(self) -> None:
        self.res: Resources | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        settings = stack.resolve(load_settings())
        self.res = loop.run_until_complete(open_resources(settings))
        settle(settings)  # as ours does once it serves: the same process tuning on both

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.res is not None:
            loop.run_until_complete(close_resources(self.res))

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        assert self.res is not None
        try:
            status, headers, body = await self.answer(self.res, scope, proto)
        except Exception as exc:  # the service's own mapping: both stacks answer errors alike
            status, envelope, extra = error_parts(exc) or (500, INTERNAL_ERROR, {})
            headers, body = [*JSON, *extra.items()], self.res.codec.dumps(envelope)
        proto.response_bytes(status, headers, body)

    async def answer(self, res: Resources, scope: Scope, proto: HTTPProtocol) -> tuple[int, list[Any], bytes]:
        if scope.path == "/api/v1/search-tweets" and scope.method == "GET":
            res.tokens.identify(scope.headers.get("authorization"))
            page, cache_state = await res.timeline.search(validate.search_query_string(scope.query_string))
            return 200, [*JSON, ("x-cache", cache_state)], page
        if scope.path == "/api/v1/tweet" and scope.method == "POST":
            user = res.tokens.identify(scope.headers.get("authorization"))
            new = validate.new_tweet(validate.json_object(await proto(), res.codec.loads))
            return 201, JSON, success(await res.timeline.post(user, new))
        if scope.path == "/ping":
            return 200, JSON, res.codec.dumps({"pong": True})
        return 404, JSON, res.codec.dumps({"error": "notFound", "message": "no such route"})


app = App()
