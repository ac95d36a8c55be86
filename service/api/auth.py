"""Bearer-token check shared by the protected routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.security.tokens import Identity

if TYPE_CHECKING:
    from service.context import AppRequest


def identify(request: AppRequest) -> Identity:
    identity: Identity = request.app.ctx.tokens.identify(request.headers.get("authorization"))
    return identity
