"""Register, log in, who am I: thin handlers over service.accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sanic import Blueprint, HTTPResponse

from service import validate
from service.api.auth import identify
from service.api.respond import raw, reply
from service.errors import success

if TYPE_CHECKING:
    from service.context import AppRequest

bp = Blueprint("users", url_prefix="/api/v1")


@bp.post("/register")
async def register(request: AppRequest) -> HTTPResponse:
    new = validate.registration(validate.json_object(request.body, request.app.ctx.codec.loads))
    user = await request.app.ctx.accounts.register(new)
    return raw(success(request.app.ctx.codec.dumps(user)), 201)


@bp.post("/login")
async def login(request: AppRequest) -> HTTPResponse:
    username, password = validate.credentials(
        validate.json_object(request.body, request.app.ctx.codec.loads))
    token = await request.app.ctx.accounts.login(username, password)
    return reply(request, {"access_token": token, "token_type": "bearer"})


@bp.get("/me")
async def me(request: AppRequest) -> HTTPResponse:
    user = await request.app.ctx.accounts.me(identify(request).user_id)
    return reply(request, {"me": user})


@bp.get("/verify")
async def verify(request: AppRequest) -> HTTPResponse:
    identify(request)
    return reply(request, {"valid": True})
