import re
import socket
import time
from typing import Any

import httpx
import pytest

from service.api.docs import EXAMPLES, OPENAPI
from tests.conftest import Server, unique


def test_unknown_route_404_json(client: httpx.Client) -> None:
    r = client.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json() == {"message": "Not found", "code": "notFound"}


def test_wrong_method_405_json(client: httpx.Client) -> None:
    r = client.get("/api/v1/register")
    assert r.status_code == 405
    assert r.json()["code"] == "methodNotAllowed"


def test_body_over_limit_413(client: httpx.Client) -> None:
    r = client.post("/api/v1/register", content=b"{" + b" " * 70_000 + b"}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == "payloadTooLarge"


def test_request_id_on_every_response(client: httpx.Client) -> None:
    ids = {client.get(p).headers["x-request-id"] for p in ("/ping", "/nope", "/ping")}
    assert len(ids) == 3
    assert client.get("/ping", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/ping", headers={"X-Request-ID": "bad id\x01"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]+-[0-9]+", replaced), replaced  # the worker's own: pid prefix, counter


def test_health(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["postgres"] == "up" and r.json()["redis"] == "up"


def test_openapi_describes_every_route(client: httpx.Client, server: Server) -> None:
    doc = client.get("/openapi.json").json()
    assert doc == OPENAPI
    expected = {("post", "/api/v1/register"), ("post", "/api/v1/login"), ("get", "/api/v1/me"),
                ("get", "/api/v1/verify"), ("post", "/api/v1/tweet"), ("get", "/api/v1/search-tweets"),
                ("get", "/health")}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert expected <= documented
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op["responses"], path
            for ref in re.findall(r"#/components/schemas/(\w+)", str(op)):
                assert ref in doc["components"]["schemas"]


def test_swagger_renders_from_local_assets(client: httpx.Client) -> None:
    page = client.get("/swagger")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/swagger/static/") for a in assets), assets
    assert "http://" not in page.text and "https://" not in page.text
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 1000, asset


def test_head_on_health_and_ping(client: httpx.Client) -> None:
    for path in ("/health", "/ping"):
        r = client.head(path)
        assert r.status_code == 200, path
        assert r.content == b"" and r.headers["content-type"].startswith("application/json")


def test_every_401_says_bearer(client: httpx.Client) -> None:
    missing = client.get("/api/v1/me")
    invalid = client.get("/api/v1/me", headers={"Authorization": "Bearer not.a.token"})
    login = client.post("/api/v1/login", json={"username": "nobody_here", "password": "wrong password"})
    assert [r.status_code for r in (missing, invalid, login)] == [401, 401, 401]
    assert missing.headers["www-authenticate"] == 'Bearer realm="simple-twitter"'
    assert invalid.headers["www-authenticate"] == 'Bearer realm="simple-twitter", error="invalid_token"'
    assert login.headers["www-authenticate"] == 'Bearer realm="simple-twitter"'


def test_page_with_underscores_is_400(client: httpx.Client, auth: dict[str, str]) -> None:
    r = client.get("/api/v1/search-tweets", params={"tag": "python", "page": "1_0"}, headers=auth)
    assert r.status_code == 400
    assert r.json()["errors"] == {"page": "must be an integer written with the digits 0-9"}


def test_a_client_trickling_headers_is_cut_off(urls: tuple[str, str],
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.conftest import start_server

    srv = start_server(urls, tmp_path_factory, REQUEST_TIMEOUT="1")
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            started = time.monotonic()
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert time.monotonic() - started < 5  # closed by the server after about 1 s
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
    finally:
        srv.stop()


def shape(value: Any) -> Any:
    """What a JSON value is made of: keys and value types, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_the_swagger_examples_have_the_shape_the_service_answers(client: httpx.Client) -> None:
    name = unique("ex_")
    register, _, registered = EXAMPLES[("/api/v1/register", "post")]
    assert register is not None
    r = client.post("/api/v1/register", json={**register, "username": name})
    assert r.status_code == 201 and shape(r.json()) == shape(registered)
    login, _, logged_in = EXAMPLES[("/api/v1/login", "post")]
    r = client.post("/api/v1/login", json={**(login or {}), "username": name})
    assert r.status_code == 200 and shape(r.json()) == shape(logged_in)
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    post, _, posted = EXAMPLES[("/api/v1/tweet", "post")]
    tag = unique("ex")
    r = client.post("/api/v1/tweet", json={**(post or {}), "tags": [tag, "sanic"]}, headers=auth)
    assert r.status_code == 201 and shape(r.json()) == shape(posted)
    searched = client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
    answers = {("/api/v1/search-tweets", "get"): searched,
               ("/api/v1/me", "get"): client.get("/api/v1/me", headers=auth),
               ("/api/v1/verify", "get"): client.get("/api/v1/verify", headers=auth),
               ("/health", "get"): client.get("/health"), ("/ready", "get"): client.get("/ready"),
               ("/ping", "get"): client.get("/ping")}
    for key, r in answers.items():
        assert r.status_code == 200 and shape(r.json()) == shape(EXAMPLES[key][2]), (key, r.text)
