"""The gevent peer of the benchmarks: a WSGI app on gevent's server with psycopg 3 (its pool,
statements prepared after repeated use) and redis-py with hiredis, serving /ping, search (hit,
miss, bypass) and post with the service's cache design, SQL and Redis scripts (the same sorted-set
entries read with their version in one pipeline, version-checked fills with single-flight, posts
added by one script call, 1 s in-process pages dropped by the invalidation channel). Request
validation and tokens are the service's own pure functions. Left out: the outage handling.

Run: python -m bench.peers.gevent_app (PORT, DATABASE_URL, REDIS_URL, TOKEN_SECRET, CACHE_ENABLED)
"""

from gevent import monkey

monkey.patch_all()

# The imports below must follow the monkey-patching.
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402
from gevent.event import AsyncResult  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from psycopg_pool import ConnectionPool  # noqa: E402

from service import validate  # noqa: E402
from service.cache.tags import ADD, FILL, TOTAL, window_answers  # noqa: E402
from service.db import tweets  # noqa: E402
from service.errors import (  # noqa: E402
    INTERNAL_ERROR,
    error_parts,
    success,
)
from service.security.tokens import Tokens  # noqa: E402
from service.settings import load_settings  # noqa: E402
from service.validate import SearchQuery  # noqa: E402

settings = load_settings()
CACHE_ON = settings.cache.cache_enabled
PREFIX = settings.cache.cache_prefix
NO_LIMIT = tweets.NO_LIMIT
Start = Callable[[str, list[tuple[str, str]]], Any]


def psycopg_sql(sql: str) -> str:
    """asyncpg's $n placeholders as psycopg's named ones (a literal % doubled)."""
    return re.sub(r"\$(\d+)", r"%(p\1)s", sql.replace("%", "%%"))


POST, ROWS, PAGE = (psycopg_sql(s) for s in (tweets.POST, tweets.SEARCH_ROWS[True], tweets.SEARCH_PAGE[True]))
pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=4, max_size=settings.pool_max, open=True)
# Blocking pool: a greenlet waits for a free connection rather than failing (Too many connections).
cache = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
    os.environ["REDIS_URL"], socket_timeout=settings.cache.redis_socket_timeout,
    max_connections=settings.cache.redis_max_connections, timeout=settings.db.db_acquire_timeout))
fill_script, add_script = cache.register_script(FILL), cache.register_script(ADD)
tokens = Tokens(os.environ["TOKEN_SECRET"], settings.token_ttl_seconds, settings.token_cache_size)

# -- in-process pages, dropped per tag by the invalidation channel --
local: dict[tuple[str, int, int, int | None], tuple[bytes, float]] = {}
by_tag: dict[str, set[tuple[str, int, int, int | None]]] = {}


def drop(tag: str) -> None:
    for key in by_tag.pop(tag, ()):
        local.pop(key, None)


def listen() -> None:
    channel = cache.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    channel.subscribe(f"{PREFIX}:inv")
    for message in channel.listen():
        for tag in message["data"].decode().split(" "):
            drop(tag)


def page_json(items: Iterable[bytes], total: int, q: SearchQuery) -> bytes:
    pagination = orjson.dumps({"total": total, "page": q.page, "page_size": q.page_size})
    return success(b"[" + b",".join(items) + b"]", b',"pagination":' + pagination)


def search_db(q: SearchQuery) -> bytes:
    with pool.connection() as conn:
        total, items = conn.execute(PAGE, {"p1": q.tag, "p2": q.page_size, "p3": (q.page - 1) * q.page_size,
                                           "p4": q.before_id or NO_LIMIT}).fetchone()  # type: ignore[misc]
    return page_json([items.encode()] if items else [], total, q)


fills: dict[str, AsyncResult] = {}


def fill(tag: str, version: bytes) -> tuple[int, list[tuple[int, bytes]], bool]:
    with pool.connection() as conn:
        rows = conn.execute(ROWS, {"p1": tag, "p2": settings.cache.cache_tag_size, "p3": 0, "p4": NO_LIMIT}).fetchall()
    total = rows[0][0]
    found = [(row[1], row[2].encode()) for row in rows if row[1] is not None]
    args: list[Any] = [version, settings.cache.cache_ttl_seconds * 1000, total]
    for tweet_id, body in found:
        args += [tweet_id, body]
    stored = fill_script(keys=[f"{PREFIX}:t:{tag}", f"{PREFIX}:v:{tag}"], args=args)
    return total, found, bool(stored)


def search_cached(q: SearchQuery) -> tuple[bytes, str]:
    key, offset = f"{PREFIX}:t:{q.tag}", (q.page - 1) * q.page_size
    pipe = cache.pipeline(transaction=False)
    if q.before_id is None:
        pipe.zrevrange(key, offset, offset + q.page_size - 1)
    else:
        pipe.zrevrangebyscore(key, f"({q.before_id}", 1, start=offset, num=q.page_size)
    pipe.zscore(key, TOTAL)
    pipe.zcard(key)
    pipe.get(f"{PREFIX}:v:{q.tag}")
    members, score, card, version = pipe.execute()
    if score is not None:
        total = -int(score) - 1
        items = [m for m in members if m != TOTAL]
        if window_answers(len(items), q.page_size, card - 1, total, offset, q.before_id):
            return page_json(items, total, q), "HIT"
        return search_db(q), "MISS"
    flight = fills.get(q.tag)
    if flight is None:
        flight = fills[q.tag] = AsyncResult()
        try:
            flight.set(fill(q.tag, version or b""))
        except Exception as exc:
            flight.set_exception(exc)
        finally:
            del fills[q.tag]
    total, found, current = flight.get()
    if q.before_id is not None:
        found = [t for t in found if t[0] < q.before_id]
    items = [body for _, body in found[offset: offset + q.page_size]]
    if current and window_answers(len(items), q.page_size, len(found), total, offset, q.before_id):
        return page_json(items, total, q), "MISS"
    return search_db(q), "MISS"


def search(environ: dict[str, Any]) -> tuple[bytes, str]:
    tokens.identify(environ.get("HTTP_AUTHORIZATION"))
    q = validate.search_query_string(environ.get("QUERY_STRING", ""))
    if not CACHE_ON:
        return search_db(q), "BYPASS"
    key = (q.tag, q.page, q.page_size, q.before_id)
    hit = local.get(key)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0], "HIT"
    body, state = search_cached(q)
    if len(local) >= 50_000:  # bounded: start again rather than grow
        local.clear()
        by_tag.clear()
    local[key] = (body, time.monotonic() + settings.cache.local_cache_ttl)
    by_tag.setdefault(q.tag, set()).add(key)
    return body, state


def post(environ: dict[str, Any]) -> bytes:
    user = tokens.identify(environ.get("HTTP_AUTHORIZATION"))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    new = validate.new_tweet(validate.json_object(environ["wsgi.input"].read(length), orjson.loads))
    with pool.connection() as conn:
        tweet_id, _, body = conn.execute(POST, {"p1": user.user_id, "p2": new.msg, "p3": new.tags,
                                                "p4": user.username}).fetchone()  # type: ignore[misc]
    if CACHE_ON and new.tags:
        keys = [k for tag in new.tags for k in (f"{PREFIX}:t:{tag}", f"{PREFIX}:v:{tag}")]
        add_script(keys=keys, args=[settings.cache.cache_tag_size, settings.cache.cache_ttl_seconds * 2000, f"{PREFIX}:inv",
                                    " ".join(new.tags), tweet_id, body, len(new.tags)])
        for tag in new.tags:
            drop(tag)
    return success(body.encode())


def app(environ: dict[str, Any], start_response: Start) -> list[bytes]:
    headers = [("Content-Type", "application/json")]
    try:
        route = (environ["REQUEST_METHOD"], environ["PATH_INFO"])
        if route == ("GET", "/ping"):
            status, body = "200 OK", b'{"pong":true}'
        elif route == ("GET", "/api/v1/search-tweets"):
            body, state = search(environ)
            status = "200 OK"
            headers.append(("X-Cache", state))
        elif route == ("POST", "/api/v1/tweet"):
            status, body = "201 Created", post(environ)
        else:
            status, body = "404 Not Found", b'{"message":"Not found","code":"notFound"}'
    except Exception as exc:
        parts = error_parts(exc)
        if parts is None:
            traceback.print_exc()
        code, error, extra = parts or (500, INTERNAL_ERROR, {})
        status, body = f"{code} Error", orjson.dumps(error)
        headers += list(extra.items())
    start_response(status, headers)
    return [body]


class Server(WSGIServer):  # type: ignore[misc]
    def handle(self, sock: socket.socket, address: Any) -> None:
        # Small responses must not wait for the client's delayed ACK (Nagle): measured without
        # this, every keep-alive request took ~40 ms and the server idled at 1,400 req/s.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def main() -> None:
    gevent.spawn(listen)
    Server(("127.0.0.1", int(os.environ["PORT"])), app, log=None, backlog=1024).serve_forever()


if __name__ == "__main__":
    main()
