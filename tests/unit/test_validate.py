import json

import pytest

from service import validate
from service.errors import BadRequest


def loads(b: bytes) -> object:
    return json.loads(b)


@pytest.mark.parametrize("body", [b"", b"{", b"[1]", b'"x"', b"null"])
def test_json_object_rejects(body: bytes) -> None:
    with pytest.raises(BadRequest):
        validate.json_object(body, loads)


@pytest.mark.parametrize("data, field", [
    ({}, "username"),
    ({"username": "ab", "password": "12345678", "full_name": "A"}, "username"),
    ({"username": "a" * 33, "password": "12345678", "full_name": "A"}, "username"),
    ({"username": "bad name", "password": "12345678", "full_name": "A"}, "username"),
    ({"username": 123, "password": "12345678", "full_name": "A"}, "username"),
    ({"username": "alice", "password": "short", "full_name": "A"}, "password"),
    ({"username": "alice", "password": "x" * 129, "full_name": "A"}, "password"),
    ({"username": "alice", "password": "12345678", "full_name": ""}, "full_name"),
    ({"username": "alice", "password": "12345678", "full_name": "x" * 129}, "full_name"),
    ({"username": "alice", "password": "12345678", "full_name": "   "}, "full_name"),
])
def test_registration_errors_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        validate.registration(data)
    assert field in info.value.errors


@pytest.mark.parametrize("data", [
    {"msg": ""}, {"msg": "   "}, {"msg": "x" * 281}, {"msg": 5}, {"tags": ["a"]},
    {"msg": "hi", "tags": "python"}, {"msg": "hi", "tags": [1]}, {"msg": "hi", "tags": ["bad tag"]},
    {"msg": "hi", "tags": [f"t{i}" for i in range(11)]},
])
def test_new_tweet_rejects(data: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        validate.new_tweet(data)


def test_new_tweet_accepts_280_and_merges_tags() -> None:
    t = validate.new_tweet({"msg": "#A " + "x" * 277, "tags": ["b"]})
    assert t.tags == ["a", "b"]


@pytest.mark.parametrize("args", [
    {}, {"tag": ""}, {"tag": "bad tag"}, {"tag": "x", "page": "abc"}, {"tag": "x", "page": "0"},
    {"tag": "x", "page_size": "0"}, {"tag": "x", "page_size": "101"}, {"tag": "x", "before_id": "-1"},
    {"tag": "x", "page": "1.5"}, {"tag": "x", "page": "1_0"}, {"tag": "x", "page": " 10"},
    {"tag": "x", "page": "+2"}, {"tag": "x", "page_size": "\u0661\u0660"},
    {"tag": "x", "before_id": "9" * 30}, {"tag": "x", "page": "101", "page_size": "100"},
    {"tag": "x", "page": "101"}, {"tag": "x", "page": "10000"}, {"tag": "x", "before_id": ""},
    {"tag": "x", "page": ""},
])
def test_search_query_rejects(args: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        validate.search_query(args)


def test_search_query_defaults_and_normalises() -> None:
    q = validate.search_query({"tag": "#Python"})
    assert (q.tag, q.page, q.page_size, q.before_id) == ("python", 1, 10, None)


def test_deepest_offset_page_and_keyset_beyond_it() -> None:
    assert validate.search_query({"tag": "x", "page": "100", "page_size": "100"}).page == 100
    deep = validate.search_query({"tag": "x", "before_id": "123456", "page_size": "100"})
    assert (deep.page, deep.before_id) == (1, 123456)


def test_long_query_strings_are_parsed_but_not_kept() -> None:
    memo = validate.search_query_string_memoised
    memo.cache_clear()
    q = validate.search_query_string("tag=python&junk=" + "x" * 10_000)
    assert q.tag == "python" and memo.cache_info().currsize == 0  # parsed, not kept
    validate.search_query_string("tag=python&page=2")
    assert memo.cache_info().currsize == 1  # a short one is kept
    assert validate.search_query_string("tag=python&page=2").page == 2 and memo.cache_info().hits == 1
