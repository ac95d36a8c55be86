"""Tag normalisation: one rule for tags given in a list, #hashtags in text, and search queries."""

from __future__ import annotations

import functools
import re
import unicodedata

MAX_TAG_LENGTH = 64
MAX_TAGS_PER_TWEET = 10

_WORD = re.compile(r"\w+")
_HASHTAG = re.compile(r"#(\w+)")


class TagError(ValueError):
    pass


MAX_RAW_LENGTH = 1024  # a longer input cannot be a tag, and is not kept in the memo below


def normalise(raw: str) -> str:
    """'#Python' -> 'python': strip one leading '#', NFKC + casefold, word characters only."""
    if len(raw) > MAX_RAW_LENGTH:
        raise TagError(f"tag longer than {MAX_TAG_LENGTH} characters: {raw[:80]!r}")
    return normalise_memoised(raw)


@functools.lru_cache(maxsize=8192)  # a pure function of hot inputs (search tags) on the hit path
def normalise_memoised(raw: str) -> str:
    """normalise() without the length guard, memoised: call normalise(), which bounds the memo's keys."""
    tag = unicodedata.normalize("NFKC", raw.strip()).casefold()
    if tag.startswith("#"):
        tag = tag[1:]
    if not tag:
        raise TagError("tag is empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise TagError(f"tag longer than {MAX_TAG_LENGTH} characters: {raw[:80]!r}")
    if not _WORD.fullmatch(tag):
        raise TagError(f"tag may hold only letters, digits and '_': {raw[:80]!r}")
    return tag


def hashtags(text: str) -> list[str]:
    """The #hashtags in a text, in order of appearance (not yet normalised)."""
    return _HASHTAG.findall(unicodedata.normalize("NFKC", text))


def tweet_tags(given: list[str], msg: str) -> list[str]:
    """The given tags (each must be valid; at most MAX_TAGS_PER_TWEET), then the #hashtags of msg
    in order while there is room: normalised, de-duplicated, sorted. A hashtag that is not a valid
    tag (too long) or finds no room stays plain text: a tweet is never refused for its text."""
    if len(given) > MAX_TAGS_PER_TWEET:
        raise TagError(f"at most {MAX_TAGS_PER_TWEET} tags per tweet, got {len(given)}")
    tags = {normalise(t) for t in given}
    for raw in hashtags(msg):
        if len(tags) >= MAX_TAGS_PER_TWEET:
            break
        try:
            tags.add(normalise(raw))
        except TagError:
            continue
    return sorted(tags)
