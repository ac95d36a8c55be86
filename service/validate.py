"""Validation at the edge: turn untrusted JSON and query strings into typed values or a 400.

Every failure names the field and says what is wrong, so clients can fix their request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from service import tagrules
from service.errors import BadRequest

USERNAME = re.compile(r"[A-Za-z0-9_]{3,32}")
MAX_MSG = 280
MAX_PAGE_SIZE = 100
# OFFSET pagination reads and skips every row before the page: past this depth a page would hold
# a pooled connection for a long scan, so deeper reads go by keyset (before_id), at any depth.
# With both bounds a page starts at most 9,900 tweets deep; each bound is a plain range, so the
# OpenAPI schema states the rule exactly.
MAX_PAGE = 100


def json_object(body: bytes, loads: Callable[[bytes], Any]) -> dict[str, Any]:
    if not body:
        raise BadRequest({"body": "a JSON object is required"})
    try:
        data = loads(body)
    except ValueError:
        raise BadRequest({"body": "malformed JSON"}) from None
    if not isinstance(data, dict):
        raise BadRequest({"body": "must be a JSON object"})
    return data


def _string(data: Mapping[str, Any], name: str, low: int, high: int) -> str:
    value = data.get(name)
    if value is None:
        raise BadRequest({name: "is required"})
    if not isinstance(value, str):
        raise BadRequest({name: "must be a string"})
    if not low <= len(value) <= high:
        raise BadRequest({name: f"must be {low}-{high} characters"})
    # PostgreSQL text holds neither NUL nor unpaired surrogates (which a JSON \ud800 escape makes).
    if "\x00" in value:
        raise BadRequest({name: "must not contain the NUL character (\\u0000)"})
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadRequest({name: "must be valid Unicode (no unpaired surrogate)"}) from None
    return value


@dataclass(frozen=True, slots=True)
class Registration:
    username: str
    password: str
    full_name: str


def registration(data: Mapping[str, Any]) -> Registration:
    username = _string(data, "username", 3, 32)
    if not USERNAME.fullmatch(username):
        raise BadRequest({"username": "may hold only letters A-Z, digits and '_'"})
    password = _string(data, "password", 8, 128)
    full_name = _string(data, "full_name", 1, 128)
    if not full_name.strip():
        raise BadRequest({"full_name": "must not be blank"})
    return Registration(username, password, full_name)


def credentials(data: Mapping[str, Any]) -> tuple[str, str]:
    # Loose limits here: a login with a wrong-shaped name is just a failed login (401), not a hint.
    return _string(data, "username", 1, 128), _string(data, "password", 1, 128)


@dataclass(frozen=True, slots=True)
class NewTweet:
    msg: str
    tags: list[str]


def new_tweet(data: Mapping[str, Any]) -> NewTweet:
    msg = _string(data, "msg", 1, MAX_MSG)
    if not msg.strip():
        raise BadRequest({"msg": "must not be blank"})
    given = data.get("tags", [])
    if given is None:
        given = []
    if not isinstance(given, list) or not all(isinstance(t, str) for t in given):
        raise BadRequest({"tags": "must be a list of strings"})
    if len(given) > tagrules.MAX_TAGS_PER_TWEET:
        raise BadRequest({"tags": f"at most {tagrules.MAX_TAGS_PER_TWEET} tags per tweet"})
    try:
        return NewTweet(msg, tagrules.tweet_tags(given, msg))
    except tagrules.TagError as exc:
        raise BadRequest({"tags": str(exc)}) from None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    tag: str
    page: int
    page_size: int
    before_id: int | None


DIGITS = re.compile(r"[0-9]+")


def _int_arg(args: Mapping[str, str], name: str, default: int | None, low: int, high: int,
             hint: str = "") -> int | None:
    raw = args.get(name)
    if raw is None:
        return default
    # Plain ASCII digits only: int() would also take "1_0", " 10", "+10" and other scripts' digits.
    if not DIGITS.fullmatch(raw):
        raise BadRequest({name: "must be an integer written with the digits 0-9"})
    value = int(raw) if len(raw) <= 20 else high + 1  # int() of a huge string costs, and is out of range
    if not low <= value <= high:
        raise BadRequest({name: f"must be between {low} and {high}{hint}"})
    return value


MEMO_MAX_CHARS = 256  # longer query strings are parsed every time: the memo stays under ~2 MB


def search_query_string(query_string: str) -> SearchQuery:
    """search_query() of a raw query string, memoised: hot searches repeat the same strings,
    and the result is immutable. Invalid strings raise and are not cached; long ones (extra
    parameters are ignored, so a valid string can be long) are not kept."""
    if len(query_string) > MEMO_MAX_CHARS:
        return _search_query_string(query_string)
    return search_query_string_memoised(query_string)


def _search_query_string(query_string: str) -> SearchQuery:
    return search_query({k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()})


# search_query_string() for strings short enough to keep: a search's query string is hot on the hit path.
search_query_string_memoised = functools.lru_cache(maxsize=4096)(_search_query_string)


def search_query(args: Mapping[str, str]) -> SearchQuery:
    raw_tag = args.get("tag")
    if not raw_tag:
        raise BadRequest({"tag": "is required"})
    try:
        tag = tagrules.normalise(raw_tag)
    except tagrules.TagError as exc:
        raise BadRequest({"tag": str(exc)}) from None
    page = _int_arg(args, "page", 1, 1, MAX_PAGE,
                    "; for older tweets pass before_id (the id of the oldest tweet you have)")
    page_size = _int_arg(args, "page_size", 10, 1, MAX_PAGE_SIZE)
    before_id = _int_arg(args, "before_id", None, 1, 2**63 - 1)
    assert page is not None and page_size is not None
    return SearchQuery(tag, page, page_size, before_id)
