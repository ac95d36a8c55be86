"""Post and search: thin handlers over service.timeline."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from service import validate
from service.api.auth import identify
from service.api.respond import raw
from service.errors import success

bp = Blueprint("tweets", url_prefix="/api/v1")


@bp.post("/tweet")
async def post_tweet(request: Request) -> HTTPResponse:
    user = identify(request)
    new = validate.new_tweet(validate.json_object(request.body, request.app.ctx.codec.loads))
    tweet = await request.app.ctx.timeline.post(user, new)
    return raw(success(tweet), 201)


@bp.get("/search-tweets")
async def search_tweets(request: Request) -> HTTPResponse:
    identify(request)
    query = validate.search_query_string(request.query_string)
    body, cache_state = await request.app.ctx.timeline.search(query)
    return raw(body, headers={"X-Cache": cache_state})
