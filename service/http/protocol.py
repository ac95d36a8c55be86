"""The protocol every worker serves with: Sanic's HTTP/1.1 connection (sanic_side.py) with the front
before it. Per connection: reading, the pipelining order, flow control, the whole-request deadline,
the connection bound and the drain, and one decision per request: answered by the route table
(routes.py) or handed to Sanic, unchanged and in order. docs/ARCHITECTURE.md says when the front
may answer and what it leaves to Sanic."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from time import monotonic
from typing import TYPE_CHECKING, Any

from service.http.routes import Route
from service.http.sanic_side import SanicConnection
from service.http.writer import X_CACHE

if TYPE_CHECKING:
    from service.context import WorkerContext

HEADER_MAX_SIZE = 8192  # Sanic's limit on a head (it answers 413 to a longer one)
HIT = X_CACHE["HIT"]
MAX_HELD = 65536  # bytes held behind a coroutine's request before reading pauses


class FrontProtocol(SanicConnection):
    """One connection (module docstring)."""

    __slots__ = ("_began", "_held", "_shielded", "_task_of_front", "ctx", "prefixes", "responses", "table",
                 "tokens")

    def connection_made(self, transport: Any) -> None:
        self.ctx: WorkerContext = self.app.ctx
        self._began = 0.0
        self._task_of_front: asyncio.Task[None] | None = None  # the front's coroutine under way
        self._shielded = False  # ... and it runs to its end if the client goes
        self._held = b""  # bytes that arrived behind it
        self.table = self.ctx.routes
        self.responses = self.ctx.responses
        self.tokens = None if self.table is None else self.ctx.tokens
        self.prefixes = () if self.table is None else self.table.prefixes
        self.finish = self.ctx.finish
        if len(self.connections) >= self.app.config.WORKER_MAX_CONNECTIONS and not self._make_room():
            self._began = -1.0  # refused: Sanic never sees it
            transport.write(self.ctx.responses.busy())
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[no-untyped-call]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._began < 0:
            return
        if self._task_of_front is not None:
            if not self._shielded:
                self._task_of_front.cancel()
            self._task_of_front = None
        super().connection_lost(exc)  # type: ignore[no-untyped-call]

    def data_received(self, data: bytes) -> None:
        if self._task_of_front is not None:
            self._hold(data)
            return
        if self.waits_for_request():
            now = monotonic()  # the first byte of a new request
            if data.startswith(self.prefixes) and self.writable() and not self.responses.stopping:
                data = self._answer(data, now)
                if not data:
                    self.active_at(now)  # the keep-alive timeout counts from here
                    return
            self._began = now
        elif self._began < 0:
            return  # refused at connection_made: Sanic never sees it
        elif self.reads_body() and monotonic() - self._began > self.request_timeout:
            self.cut()  # a body still arriving (read or discarded) after the deadline
            return
        super().data_received(data)
        self.active_at(self._began)  # Sanic's timers count from the request's first byte

    def check_timeouts(self) -> None:
        """Sanic's periodic check, and the deadline of a body being discarded after its response:
        Sanic counts that stage against the keep-alive timeout only."""
        if self.discards_body() and monotonic() - self._began > self.request_timeout:
            self.cut()
            return
        super().check_timeouts()  # type: ignore[no-untyped-call]

    def idle(self) -> bool:
        """No request in flight, nothing buffered."""
        return self._task_of_front is None and self.waits_for_request()

    def close_if_idle(self) -> bool:
        return False if self._task_of_front is not None else bool(super().close_if_idle())

    def _answer(self, data: bytes, arrived: float) -> bytes:
        """Answer the leading whole requests the route table takes with a page, and start the
        coroutine of the first it takes with one; return the bytes left for Sanic."""
        start, table, tokens, paged = 0, self.table, self.tokens, None
        hits: list[bytes] = []
        while start < len(data) and table is not None and tokens is not None:
            end = data.find(b"\r\n\r\n", start, start + HEADER_MAX_SIZE)
            decided = None if end < 0 else table.decide(data[start:end])  # the one decision
            if decided is None:
                break
            route, (what, token, request_id, length) = decided
            user = tokens.cached(token)
            if user is None:
                break
            body_end = end + 4 + length
            if route.body is not None:
                if length > self.request_max_size or body_end > len(data):
                    break
                what = route.body(data[end + 4:body_end])
                if what is None:
                    break
            page = None if route.page is None else route.page(what, arrived)
            if page is None:
                if route.task is None:
                    break
                if paged is not None:
                    self._write_hits(hits, paged, arrived)
                self._held, self._shielded = data[body_end:], route.shielded
                run = self._run(route, route.task(what, user), request_id, arrived)
                self._task_of_front = asyncio.get_running_loop().create_task(run)
                return b""
            hits.append(self.responses.page(page) if request_id is None else
                        self.responses.whole(200, page, request_id, HIT))
            start, paged = body_end, route
        if paged is not None:
            self._write_hits(hits, paged, arrived)
        return data[start:] if start else data

    def _write_hits(self, hits: list[bytes], route: Route[Any], arrived: float) -> None:
        if hits and self.transport is not None:
            self.transport.write(b"".join(hits))
            self.ctx.responses.count_hits(route.label, len(hits), arrived)
            hits.clear()

    async def _run(self, route: Route[Any], answering: Coroutine[Any, Any, Any], request_id: str | None,
                   arrived: float) -> None:
        """A coroutine's answer, or its error rendered by the app's one error renderer, written and
        counted; then what waited behind it is read (or, while draining, the connection closes)."""
        try:
            status, body, fields, cache = route.answer(await answering)
        except Exception as exc:
            status, body, fields, cache = self.ctx.error_answer(exc)
        transport, responses = self.transport, self.responses
        if transport is None or transport.is_closing():
            self._task_of_front = None
            return
        transport.write(responses.whole(status, body, request_id, fields))
        responses.count_front(route.label, route.method, status, arrived, cache)
        if responses.stopping:
            self._task_of_front = None
            transport.close()
            return
        self._resume()

    def _resume(self) -> None:
        self._task_of_front = None
        held, self._held = self._held, b""
        self.active_at(monotonic())
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            if held:
                self.data_received(held)

    def _hold(self, data: bytes) -> None:
        self._held += data
        if len(self._held) > MAX_HELD and self.transport is not None:
            self.transport.pause_reading()

    def _make_room(self) -> bool:
        """Close the connection idle the longest."""
        idle = [c for c in self.connections if isinstance(c, FrontProtocol) and c.idle()]
        if not idle:
            return False
        min(idle, key=lambda c: c.last_active()).close()
        return True
