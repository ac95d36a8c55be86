"""Inputs that once got a 500: each is a 2xx or a 4xx naming the field."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.conftest import register_and_login, unique


def test_non_ascii_tags_post_and_search(client: httpx.Client, auth: dict[str, str]) -> None:
    # The test cluster runs under the C locale, where a \w check in the database refused these.
    suffix = unique("")
    r = client.post("/api/v1/tweet", headers=auth,
                    json={"msg": f"#été{suffix} à #日本{suffix}", "tags": [f"Straße{suffix}"]})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["tags"] == sorted([f"été{suffix}", f"日本{suffix}", f"strasse{suffix}"])
    for tag in (f"#ÉTÉ{suffix}", f"日本{suffix}", f"STRASSE{suffix}"):
        found = client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
        assert found.status_code == 200, found.text
        assert found.json()["pagination"]["total"] == 1, tag


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/login", {"username": "a\x00b", "password": "whatever1"}, "username"),
    ("/api/v1/login", {"username": "someone", "password": "pass\x00word"}, "password"),
    ("/api/v1/register", {"username": "nul_user", "password": "password1", "full_name": "A\x00B"},
     "full_name"),
])
def test_nul_in_a_string_is_400_naming_the_field(client: httpx.Client, path: str, body: dict[str, str],
                                                 field: str) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["errors"]


def test_nul_or_lone_surrogate_in_a_tweet_is_400(client: httpx.Client, auth: dict[str, str]) -> None:
    r = client.post("/api/v1/tweet", json={"msg": "hello\x00world"}, headers=auth)
    assert r.status_code == 400 and "msg" in r.json()["errors"], r.text
    raw = b'{"msg": "half a pair \\ud800 here"}'
    r = client.post("/api/v1/tweet", content=raw, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text


def test_a_token_whose_user_was_deleted_is_401_on_post(client: httpx.Client, urls: tuple[str, str]) -> None:
    name, auth = register_and_login(client)

    async def delete_user() -> None:
        conn = await asyncpg.connect(urls[0])
        try:
            await conn.execute("DELETE FROM users WHERE username = $1", name)
        finally:
            await conn.close()

    asyncio.run(delete_user())
    r = client.post("/api/v1/tweet", json={"msg": "from beyond"}, headers=auth)
    assert r.status_code == 401, r.text
    assert r.json()["message"] == "User no longer exists"
    assert r.headers["www-authenticate"] == 'Bearer realm="simple-twitter", error="invalid_token"'
