"""Responses built from bytes: the body is serialized once, by the codec the settings chose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sanic import HTTPResponse

if TYPE_CHECKING:
    from service.context import AppRequest

JSON = "application/json"


def raw(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(body, status=status, headers=headers, content_type=JSON)


def reply(request: AppRequest, value: Any, status: int = 200) -> HTTPResponse:
    return raw(request.app.ctx.codec.dumps(value), status)
