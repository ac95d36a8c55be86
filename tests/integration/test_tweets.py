import asyncio
import re
from typing import Any, cast

import httpx
import pytest
import redis

from tests.conftest import Server, unique


def post(client: httpx.Client, auth: dict[str, str], msg: str,
         tags: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, object] = {"msg": msg}
    if tags is not None:
        body["tags"] = tags
    r = client.post("/api/v1/tweet", json=body, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["code"] == "success"
    return cast(dict[str, Any], r.json()["data"])


def search(client: httpx.Client, auth: dict[str, str], tag: str, **params: str | int) -> httpx.Response:
    r = client.get("/api/v1/search-tweets", params={"tag": tag, **params}, headers=auth)
    assert r.status_code == 200, r.text
    return r


def test_post_shape_and_tags(client: httpx.Client, auth: dict[str, str]) -> None:
    tag = unique("t")
    data = post(client, auth, f"hello #{tag.upper()} and #Other_{tag}", ["#Python", tag])
    assert set(data) >= {"id", "msg", "user_id", "created_at", "tags"}
    assert data["tags"] == sorted({tag, f"other_{tag}", "python"})
    assert data["created_at"].endswith("Z")


@pytest.mark.parametrize("body, field", [
    ({"msg": ""}, "msg"), ({"msg": "x" * 281}, "msg"), ({}, "msg"), ({"msg": 12}, "msg"),
    ({"msg": "hi", "tags": "python"}, "tags"), ({"msg": "hi", "tags": [1, 2]}, "tags"),
    ({"msg": "hi", "tags": [f"t{i}" for i in range(11)]}, "tags"),
    ({"msg": "hi", "tags": ["#" + "x" * 65]}, "tags"), ({"msg": "hi", "tags": ["no spaces"]}, "tags"),
])
def test_post_bad_input(client: httpx.Client, auth: dict[str, str], body: dict[str, Any], field: str) -> None:
    r = client.post("/api/v1/tweet", json=body, headers=auth)
    assert r.status_code == 400
    assert field in r.json()["errors"]


def test_text_is_never_refused_for_its_hashtags(client: httpx.Client, auth: dict[str, str]) -> None:
    long_word = "#" + "x" * 65
    many = " ".join(f"#h{i}" for i in range(12))
    r = client.post("/api/v1/tweet", json={"msg": f"hi {long_word} {many}"}, headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["tags"] == sorted(f"h{i}" for i in range(10))  # the first 10 that fit


@pytest.mark.parametrize("params", [
    {}, {"tag": ""}, {"tag": "a b"}, {"tag": "x", "page": "abc"}, {"tag": "x", "page": "0"},
    {"tag": "x", "page_size": "1000"}, {"tag": "x", "page_size": "-1"}, {"tag": "x", "before_id": "z"},
])
def test_search_bad_input(client: httpx.Client, auth: dict[str, str], params: dict[str, str]) -> None:
    r = client.get("/api/v1/search-tweets", params=params, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "badRequest"


def test_search_newest_first_total_and_pages(client: httpx.Client, auth: dict[str, str]) -> None:
    tag = unique("p")
    ids = [post(client, auth, f"tweet {i} #{tag}")["id"] for i in range(25)]
    newest = ids[::-1]
    # Page 2 first must not disturb page 1 (the seed cached single pages).
    p2 = search(client, auth, tag, page=2, page_size=10).json()
    p1 = search(client, auth, tag, page=1, page_size=10).json()
    p3 = search(client, auth, tag, page=3, page_size=10).json()
    assert [t["id"] for t in p1["data"]] == newest[:10]
    assert [t["id"] for t in p2["data"]] == newest[10:20]
    assert [t["id"] for t in p3["data"]] == newest[20:]
    for p in (p1, p2, p3):
        assert p["pagination"]["total"] == 25
    assert search(client, auth, tag, page=4).json()["data"] == []
    # Keyset pagination.
    after = search(client, auth, tag, before_id=newest[9], page_size=10).json()
    assert [t["id"] for t in after["data"]] == newest[10:20]
    # Same answers on a hit as on a miss.
    again = search(client, auth, tag, page=1, page_size=10)
    assert again.headers["x-cache"] == "HIT" and again.json() == p1


def test_miss_then_hit_and_normalised_tag(client: httpx.Client, auth: dict[str, str]) -> None:
    tag = unique("n")
    post(client, auth, f"#{tag}")
    assert search(client, auth, tag).headers["x-cache"] == "MISS"
    r = search(client, auth, f"#{tag.upper()}")
    assert r.headers["x-cache"] == "HIT" and r.json()["pagination"]["total"] == 1


def test_unknown_tag_is_empty(client: httpx.Client, auth: dict[str, str]) -> None:
    body = search(client, auth, unique("none")).json()
    assert body == {"data": [], "code": "success", "pagination": {"total": 0, "page": 1, "page_size": 10}}


def test_new_tweet_visible_at_once_on_cached_tag(client: httpx.Client, auth: dict[str, str]) -> None:
    tag = unique("c")
    for i in range(3):
        post(client, auth, f"old {i} #{tag}")
    assert search(client, auth, tag).json()["pagination"]["total"] == 3  # now cached
    new = post(client, auth, f"fresh #{tag}")
    r = search(client, auth, tag)
    assert r.headers["x-cache"] == "HIT"
    assert r.json()["data"][0]["id"] == new["id"] and r.json()["pagination"]["total"] == 4


def test_post_to_uncached_tag_creates_no_partial_entry(client: httpx.Client, auth: dict[str, str],
                                                       urls: tuple[str, str]) -> None:
    tag = unique("u")
    for i in range(5):
        post(client, auth, f"older {i} #{tag}")
    r = redis.Redis.from_url(urls[1])
    r.delete(f"st:t:{tag}")  # make sure it is not cached
    post(client, auth, f"newest #{tag}")
    assert not r.exists(f"st:t:{tag}")
    body = search(client, auth, tag).json()
    assert body["pagination"]["total"] == 6 and len(body["data"]) == 6


def test_text_round_trips_exactly(client: httpx.Client, auth: dict[str, str], urls: tuple[str, str]) -> None:
    tag = unique("rt")
    msg = f"quote \" ' ; semi;colons; <script>alert(1)</script>\nnew line 🎉 __import__('os') #{tag}"
    post(client, auth, msg)
    for _ in range(2):  # miss, then hit
        assert search(client, auth, tag).json()["data"][0]["msg"] == msg
    # Cached values are JSON bytes (no repr/eval/pickle).
    import json

    members: list[bytes] = redis.Redis.from_url(urls[1]).zrange(f"st:t:{tag}", 0, -1)  # type: ignore[assignment]
    tweets = [json.loads(m) for m in members if m != b"#n"]
    assert tweets and tweets[0]["msg"] == msg


def test_concurrent_posts_same_new_tag(client: httpx.Client, auth: dict[str, str], server: Server) -> None:
    tag = unique("race")

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as ac:
            rs = await asyncio.gather(*(
                ac.post("/api/v1/tweet", json={"msg": f"#{tag} {i}", "tags": [tag, "shared_race"]},
                        headers=auth)
                for i in range(40)))
            return [r.status_code for r in rs]

    assert asyncio.run(burst()) == [201] * 40
    body = search(client, auth, tag, page_size=100).json()
    assert body["pagination"]["total"] == 40 and len(body["data"]) == 40
    assert len({t["id"] for t in body["data"]}) == 40


@pytest.fixture(scope="module")
def bypass_server(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.conftest import start_server

    srv = start_server(urls, tmp_path_factory, CACHE_ENABLED="false")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def unstored_server(urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Cache off, each tweet's JSON built per read instead of read as stored (the ablation)."""
    from tests.conftest import start_server

    srv = start_server(urls, tmp_path_factory, CACHE_ENABLED="false", STORED_TWEET_JSON="false")
    yield srv
    srv.stop()


def test_tweet_bytes_identical_from_post_fill_cache_and_database(
        client: httpx.Client, auth: dict[str, str], urls: tuple[str, str], bypass_server: Server,
        unstored_server: Server) -> None:
    """A tweet's JSON is built once by PostgreSQL when written (sql/006) and stored: the post's
    response, the fill, the cached member, a hit, a bypass and a read that builds it again from the
    columns (STORED_TWEET_JSON=false) are the same bytes, and each field says what was posted."""
    tag = unique("bytes")
    msg = f'q"uote \\ back\tslash\nline \x01\x1f\x7f é 日本 🎉 \u2028 </script> #{tag}'
    r = client.post("/api/v1/tweet", json={"msg": msg, "tags": ["Zeta", "alpha"]}, headers=auth)
    assert r.status_code == 201, r.text
    tweet = r.content[len(b'{"data":'): -len(b',"code":"success"}')]
    assert r.content == b'{"data":' + tweet + b',"code":"success"}'
    assert httpx.Response(200, content=tweet).json()["msg"] == msg
    fill = client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
    assert fill.headers["X-Cache"] == "MISS"
    assert fill.content.startswith(b'{"data":[' + tweet + b'],')
    cached = redis.Redis.from_url(urls[1]).zrange(f"st:t:{tag}", 0, -1)
    assert tweet in cached
    hit = client.get("/api/v1/search-tweets", params={"tag": tag}, headers=auth)
    assert hit.headers["X-Cache"] == "HIT" and hit.content == fill.content
    bypass = httpx.get(f"{bypass_server.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
    assert bypass.headers["X-Cache"] == "BYPASS" and bypass.content == fill.content
    rebuilt = httpx.get(f"{unstored_server.url}/api/v1/search-tweets", params={"tag": tag}, headers=auth)
    assert rebuilt.headers["X-Cache"] == "BYPASS" and rebuilt.content == fill.content
    me = client.get("/api/v1/me", headers=auth).json()["me"]
    fields = httpx.Response(200, content=tweet).json()
    assert list(fields) == ["id", "msg", "user_id", "username", "created_at", "tags"]
    assert (fields["msg"], fields["user_id"], fields["username"], fields["tags"]) == (
        msg, me["user_id"], me["username"], sorted(["zeta", "alpha", tag]))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fields["created_at"])
    assert isinstance(fields["id"], int) and fields["id"] > 0
