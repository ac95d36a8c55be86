"""Bearer-token check shared by the protected routes."""

from __future__ import annotations

from sanic import Request

from service.security.tokens import Identity


def identify(request: Request) -> Identity:
    identity: Identity = request.app.ctx.tokens.identify(request.headers.get("authorization"))
    return identity
