"""Post and search: thin handlers over service.timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sanic import Blueprint, HTTPResponse

from service import validate
from service.api.auth import identify
from service.api.paths import POST_PATH, SEARCH_PATH
from service.api.respond import raw
from service.errors import success

if TYPE_CHECKING:
    from service.context import AppRequest

bp = Blueprint("tweets")


@bp.post(POST_PATH)
async def post_tweet(request: AppRequest) -> HTTPResponse:
    user = identify(request)
    new = validate.new_tweet(validate.json_object(request.body, request.app.ctx.codec.loads))
    tweet = await request.app.ctx.timeline.post(user, new)
    return raw(success(tweet), 201)


@bp.get(SEARCH_PATH)
async def search_tweets(request: AppRequest) -> HTTPResponse:
    identify(request)
    query = validate.search_query_string(request.query_string)
    body, cache_state = await request.app.ctx.timeline.search(query)
    return raw(body, headers={"X-Cache": cache_state})
