import statistics
import time

import httpx
import jwt
import pytest

from tests.conftest import TEST_SECRET, register_and_login, unique


def test_register_login_me_verify(client: httpx.Client) -> None:
    name = unique("Alice_")
    r = client.post("/api/v1/register", json={"username": name, "password": "password123",
                                              "full_name": "Alice Example"})
    assert r.status_code == 201
    body = r.json()
    assert body["code"] == "success"
    assert body["data"]["username"] == name and body["data"]["full_name"] == "Alice Example"
    assert isinstance(body["data"]["user_id"], int)
    r = client.post("/api/v1/login", json={"username": name.upper(), "password": "password123"})
    assert r.status_code == 200
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json() == {"me": body["data"]}
    assert client.get("/api/v1/verify", headers=headers).json() == {"valid": True}


def test_duplicate_username_any_case(client: httpx.Client) -> None:
    name = unique("bob_")
    payload = {"username": name, "password": "password123", "full_name": "Bob"}
    assert client.post("/api/v1/register", json=payload).status_code == 201
    r = client.post("/api/v1/register", json={**payload, "username": name.upper()})
    assert r.status_code == 422
    assert r.json() == {"message": "Invalid input", "code": "invalidInput", "errors": "User exists"}


@pytest.mark.parametrize("payload, field", [
    ({"password": "password123", "full_name": "X"}, "username"),
    ({"username": "ab", "password": "password123", "full_name": "X"}, "username"),
    ({"username": "has space", "password": "password123", "full_name": "X"}, "username"),
    ({"username": "u" * 33, "password": "password123", "full_name": "X"}, "username"),
    ({"username": ["x"], "password": "password123", "full_name": "X"}, "username"),
    ({"username": "okname", "password": "short", "full_name": "X"}, "password"),
    ({"username": "okname", "password": "password123", "full_name": ""}, "full_name"),
    ({"username": "okname", "password": "password123", "full_name": "f" * 129}, "full_name"),
])
def test_register_bad_input(client: httpx.Client, payload: dict[str, object], field: str) -> None:
    r = client.post("/api/v1/register", json=payload)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "badRequest" and field in body["errors"]


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"", b"\xff\xfe"])
def test_malformed_bodies(client: httpx.Client, raw: bytes) -> None:
    for path in ("/api/v1/register", "/api/v1/login"):
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (path, raw, r.text)
        assert r.json()["code"] == "badRequest"


def test_login_failures_are_401_and_take_similar_time(client: httpx.Client) -> None:
    name, _ = register_and_login(client)
    wrong, unknown = [], []
    for _ in range(15):  # medians of 15 each, interleaved: one slow moment moves neither
        t = time.perf_counter()
        r1 = client.post("/api/v1/login", json={"username": name, "password": "wrong password"})
        wrong.append(time.perf_counter() - t)
        t = time.perf_counter()
        r2 = client.post("/api/v1/login", json={"username": unique("nobody_"), "password": "whatever1"})
        unknown.append(time.perf_counter() - t)
        assert r1.status_code == r2.status_code == 401
        assert r1.json() == r2.json()
    # An unknown user costs a full hash verification too: no fast path that reveals existence.
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (unknown, wrong)


def test_passwords_are_argon2id(client: httpx.Client, urls: tuple[str, str]) -> None:
    import asyncio

    import asyncpg

    name, _ = register_and_login(client)

    async def fetch() -> str:
        conn = await asyncpg.connect(urls[0])
        try:
            return str(await conn.fetchval("SELECT password_hash FROM users WHERE username=$1", name))
        finally:
            await conn.close()

    stored = asyncio.run(fetch())
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def _token(**claims: object) -> str:
    base: dict[str, object] = {"sub": "1", "name": "x", "iat": int(time.time()),
                               "exp": int(time.time()) + 60, "iss": "simple-twitter"}
    base.update(claims)
    return jwt.encode(base, TEST_SECRET, algorithm="HS256")


FORGED = jwt.encode({"sub": "1", "name": "x", "exp": 9999999999, "iat": 1, "iss": "simple-twitter"},
                    "k" * 40, algorithm="HS256")


@pytest.mark.parametrize("header", [None, "Bearer", "Token abc", "Bearer abc.def.ghi", f"Bearer {FORGED}"])
def test_bad_tokens_are_401(client: httpx.Client, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("GET", "/api/v1/me"), ("GET", "/api/v1/verify"),
                         ("POST", "/api/v1/tweet"), ("GET", "/api/v1/search-tweets?tag=x")):
        r = client.request(method, path, headers=headers, json={"msg": "x"} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["code"] == "unauthorized"


def test_expired_token_is_401(client: httpx.Client) -> None:
    token = _token(exp=int(time.time()) - 5)
    r = client.get("/api/v1/verify", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_valid_foreign_signed_token_accepted(client: httpx.Client) -> None:
    # Proves the test above fails for the right reason: same claims, unexpired, are accepted.
    r = client.get("/api/v1/verify", headers={"Authorization": f"Bearer {_token()}"})
    assert r.status_code == 200
