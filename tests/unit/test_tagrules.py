import pytest

from service.tagrules import MAX_TAGS_PER_TWEET, TagError, hashtags, normalise, tweet_tags


@pytest.mark.parametrize("raw, expected", [
    ("Python", "python"), ("#Python", "python"), ("  #SANIC ", "sanic"),
    ("\uff30\uff39\uff34\uff28\uff2f\uff2e", "python"),
    ("Straße", "strasse"), ("日本語", "日本語"), ("tag_1", "tag_1"), ("x" * 64, "x" * 64),
])
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize("raw", ["", "#", "  ", "a b", "semi;colon", "x" * 65, "<b>", "a-b", "##x"])
def test_normalise_rejects(raw: str) -> None:
    with pytest.raises(TagError):
        normalise(raw)


def test_hashtags_in_text() -> None:
    assert hashtags("Hello #World and #python3, not a#b? #日本") == ["World", "python3", "b", "日本"]


def test_tweet_tags_union_dedup_sorted() -> None:
    assert tweet_tags(["Python", "#sanic"], "love #PYTHON and #uvloop") == ["python", "sanic", "uvloop"]


def test_tweet_tags_limit() -> None:
    given = [f"t{i}" for i in range(MAX_TAGS_PER_TWEET)]
    assert len(tweet_tags(given, "no tags here")) == MAX_TAGS_PER_TWEET
    assert tweet_tags(given, "one more #extra") == sorted(given)  # no room: stays text
    with pytest.raises(TagError):
        tweet_tags([*given, "t99"], "")
    assert tweet_tags(["a", "A", "#a"], "") == ["a"]  # duplicates count once, the list's length counts


def test_hashtags_fill_the_room_in_order_and_bad_ones_stay_text() -> None:
    text = " ".join(f"#h{i}" for i in range(15)) + " #" + "x" * 65
    assert tweet_tags(["z"], text) == sorted(["z"] + [f"h{i}" for i in range(9)])
    assert tweet_tags([], "#" + "y" * 65 + " #ok") == ["ok"]


def test_long_raw_input_is_refused_before_the_memo() -> None:
    from service import tagrules

    before = tagrules.normalise_memoised.cache_info().currsize
    with pytest.raises(tagrules.TagError):
        tagrules.normalise(" " * 100_000 + "python")
    assert tagrules.normalise_memoised.cache_info().currsize == before
