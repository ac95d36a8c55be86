"""OpenAPI document and Swagger UI, served entirely by the service (works with no internet)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import swagger_ui_bundle
from sanic import Blueprint, HTTPResponse
from sanic.response import html

from service.api.respond import reply

if TYPE_CHECKING:
    from service.context import AppRequest

bp = Blueprint("docs")
bp.static("/swagger/static", swagger_ui_bundle.swagger_ui_path, name="swagger_static")

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Simple Twitter API</title>
<link rel="stylesheet" href="/swagger/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/swagger/static/swagger-ui-bundle.js"></script>
<script src="/swagger/static/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
</script></body></html>"""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Bad input (malformed JSON, wrong types, missing or over-long fields)",
            401: "Missing, malformed, forged or expired token / wrong credentials (header "
                 "WWW-Authenticate: Bearer, with error=\"invalid_token\" for a bad token)",
            413: "Body larger than REQUEST_MAX_SIZE", 422: "Username taken ('User exists')",
            503: "PostgreSQL unavailable (Retry-After set)"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
# Text fields hold no NUL (PostgreSQL text cannot) and, where they must not be blank, at least one
# character outside Python's whitespace (str.isspace), written out so that every regex engine
# (ECMA's \s differs) reads the same rule as service/validate.py.
SPACE = "\t\n\u000b\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = "^[^\u0000]*$"
NOT_BLANK = f"^[^\u0000]*[^\u0000{SPACE}][^\u0000]*$"
# A tag: optional '#', then letters, digits or '_' after Unicode NFKC and case folding, at most 64
# of them. No regex says that exactly, so the schema names the rule as a format.
TAG = {"type": "string", "format": "tag", "description": "Optional '#', then up to 64 letters, digits "
       "or '_' (any script). Matched case-insensitively after Unicode NFKC: 'Python', '#PYTHON' and "
       "the full-width form of 'python' are one tag"}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["message", "code"], "properties": {
        "message": STRING, "code": STRING, "errors": {}}},
    "Registration": {"type": "object", "required": ["username", "password", "full_name"], "properties": {
        "username": {"type": "string", "pattern": "^[A-Za-z0-9_]{3,32}$"},
        "password": {"type": "string", "minLength": 8, "maxLength": 128, "pattern": NO_NUL},
        "full_name": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NOT_BLANK}}},
    "Credentials": {"type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_NUL},
        "password": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_NUL}}},
    "User": {"type": "object", "properties": {"user_id": INTEGER, "username": STRING, "full_name": STRING}},
    "NewTweet": {"type": "object", "required": ["msg"], "properties": {
        "msg": {"type": "string", "minLength": 1, "maxLength": 280, "pattern": NOT_BLANK,
                "description": "#hashtags in the text become tags too"},
        "tags": {"type": "array", "items": TAG, "maxItems": 10, "nullable": True,
                 "description": "At most 10 distinct tags, together with the #hashtags of msg; "
                                "null or absent: none"}}},
    "Tweet": {"type": "object", "properties": {
        "id": INTEGER, "msg": STRING, "user_id": INTEGER, "username": STRING,
        "created_at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": STRING}}},
}


def _op(op_id: str, summary: str, responses: dict[str, Any], *, body: str | None = None,
        auth: bool = False, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": responses}
    if body:
        op["requestBody"] = _body(body)
    if auth:
        op["security"] = BEARER
    if parameters:
        op["parameters"] = parameters
    return op


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"data": data, "code": {"type": "string", "enum": ["success"]}}}


PATHS: dict[str, Any] = {
    "/api/v1/register": {"post": _op("register", "Register a user", {
        "201": _json(_envelope(_ref("User")), "Created"), **_errors(400, 413, 422, 503)},
        body="Registration")},
    "/api/v1/login": {"post": _op("login", "Log in: get a bearer token", {
        "200": _json({"type": "object", "required": ["access_token", "token_type"], "properties": {
            "access_token": {"type": "string", "description": "A signed token (JWT, HS256) valid for "
                             "TOKEN_TTL_SECONDS (default 3600): send it as `Authorization: Bearer <token>`"},
            "token_type": {"type": "string", "enum": ["bearer"],
                           "description": "Always `bearer` (RFC 6750), as in OAuth 2 token responses"}}},
                     "Token"), **_errors(400, 401, 503)}, body="Credentials")},
    "/api/v1/me": {"get": _op("me", "The token's user", {
        "200": _json({"type": "object", "properties": {"me": _ref("User")}}, "User"),
        **_errors(401, 503)}, auth=True)},
    "/api/v1/verify": {"get": _op("verify", "Check a token", {
        "200": _json({"type": "object", "properties": {"valid": {"type": "boolean"}}}, "Valid"),
        **_errors(401)}, auth=True)},
    "/api/v1/tweet": {"post": _op("postTweet", "Post a tweet", {
        "201": _json(_envelope(_ref("Tweet")), "Created"), **_errors(400, 401, 413, 503)},
        body="NewTweet", auth=True)},
    "/api/v1/search-tweets": {"get": _op("searchTweets", "Tweets with a tag, newest first", {
        "200": _json({"type": "object", "properties": {
            "data": {"type": "array", "items": _ref("Tweet")}, "code": STRING,
            "pagination": {"type": "object", "properties": {
                "total": {"type": "integer", "description": "Every tweet with the tag, whatever page, "
                          "page_size and before_id: with before_id the page may hold fewer"},
                "page": INTEGER, "page_size": INTEGER}}}},
            "A page of tweets; header X-Cache is HIT, MISS or BYPASS"),
        **_errors(400, 401, 503)}, auth=True, parameters=[
            _query("tag", TAG, "Tag, with or without '#'", True),
            _query("page", {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
                   "Page number (pages start at most 9,900 tweets deep; older: before_id)"),
            _query("page_size", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                   "Tweets per page"),
            _query("before_id", {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1},
                   "Keyset pagination: only tweets with id < before_id")])},
    "/health": {"get": _op("health", "PostgreSQL and Redis state", {
        "200": _json({"type": "object"}, "PostgreSQL reachable"),
        "503": _json({"type": "object"}, "PostgreSQL unreachable")})},
    "/ready": {"get": _op("ready", "200 while this worker takes requests, 503 while it drains", {
        "200": _json({"type": "object"}, "ready"), "503": _json({"type": "object"}, "shutting down")})},
    "/ping": {"get": _op("ping", "Constant response (benchmark floor)",
                         {"200": _json({"type": "object"}, "pong")})},
    "/metrics": {"get": _op("metrics", "Prometheus metrics of every worker (METRICS_ENABLED)", {
        "200": {"description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}})},
}

# How one operation's result feeds the next (OpenAPI links): documentation for clients, and the
# transitions schemathesis's stateful phase follows (register -> log in; post -> search its tag).
LINKS = {
    ("/api/v1/register", "post", "201"): {"LogIn": {
        "operationId": "login", "description": "Log in with the credentials just registered",
        "requestBody": {"username": "$request.body#/username", "password": "$request.body#/password"}}},
    ("/api/v1/tweet", "post", "201"): {"SearchFirstTag": {
        "operationId": "searchTweets", "description": "The new tweet is on page 1 of each of its tags",
        "parameters": {"tag": "$response.body#/data/tags/0"}}},
}
for (path, method, status), links in LINKS.items():
    PATHS[path][method]["responses"][status]["links"] = links

# Swagger UI lists the operations by group, in this order.
GROUPS = {
    "accounts": ("Register, log in, and the token's user",
                 ["/api/v1/register", "/api/v1/login", "/api/v1/me", "/api/v1/verify"]),
    "tweets": ("Post tweets and search them by tag, newest first",
               ["/api/v1/tweet", "/api/v1/search-tweets"]),
    "operations": ("Health and readiness probes, the benchmark floor, Prometheus metrics",
                   ["/health", "/ready", "/ping", "/metrics"]),
}
for group, (_, paths) in GROUPS.items():
    for path in paths:
        for operation in PATHS[path].values():
            operation["tags"] = [group]

# An example request and response per operation, as the service answers them.
USER = {"user_id": 1, "username": "ada_lovelace", "full_name": "Ada Lovelace"}
TWEET = {"id": 42, "msg": "Shipping it #python", "user_id": 1, "username": "ada_lovelace",
         "created_at": "2026-12-03T07:00:00.123456+00:00", "tags": ["python", "sanic"]}
EXAMPLES: dict[tuple[str, str], tuple[dict[str, Any] | None, str, Any]] = {
    ("/api/v1/register", "post"): ({"username": "ada_lovelace", "password": "correct horse 1",
                                    "full_name": "Ada Lovelace"}, "201", {"data": USER, "code": "success"}),
    ("/api/v1/login", "post"): ({"username": "ada_lovelace", "password": "correct horse 1"}, "200",
                                {"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
                                 "token_type": "bearer"}),
    ("/api/v1/me", "get"): (None, "200", {"me": USER}),
    ("/api/v1/verify", "get"): (None, "200", {"valid": True}),
    ("/api/v1/tweet", "post"): ({"msg": "Shipping it #python", "tags": ["sanic"]}, "201",
                                {"data": TWEET, "code": "success"}),
    ("/api/v1/search-tweets", "get"): (None, "200", {"data": [TWEET], "code": "success",
                                                     "pagination": {"total": 1, "page": 1, "page_size": 10}}),
    ("/health", "get"): (None, "200", {"status": "ok", "postgres": "up", "redis": "up", "cache": "on"}),
    ("/ready", "get"): (None, "200", {"ready": True}),
    ("/ping", "get"): (None, "200", {"pong": True}),
}
for (path, method), (request, status, response) in EXAMPLES.items():
    operation = PATHS[path][method]
    if request is not None:
        operation["requestBody"]["content"]["application/json"]["example"] = request
    operation["responses"][status]["content"]["application/json"]["example"] = response

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Simple Twitter", "version": "1.0.0",
             "description": "Register, post tweets, search tweets by tag."},
    "tags": [{"name": group, "description": description} for group, (description, _) in GROUPS.items()],
    "paths": PATHS,
    "components": {"schemas": SCHEMAS, "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
}


@bp.get("/openapi.json")
async def openapi(request: AppRequest) -> HTTPResponse:
    return reply(request, OPENAPI)


@bp.get("/swagger")
async def swagger(request: AppRequest) -> HTTPResponse:
    return html(PAGE)
