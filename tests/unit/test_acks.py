"""A post's wait for the feeds of other instances (service/cache/acks.py), without Redis."""

from __future__ import annotations

import asyncio
import time

from service.cache.acks import Acks, group_of, host_group, parse_ask


def test_the_asking_word_names_the_poster_its_group_and_a_number() -> None:
    acks = Acks(0.1, "g1")
    word, number = acks.ask()
    assert parse_ask(word) == (acks.me, number)
    assert group_of(acks.me) == "g1"
    assert acks.ask()[1] == number + 1
    for other in ("tag", "^", "^x", "^x:", "^:3", "^x:3a", "!dirty"):
        assert parse_ask(other) is None, other
    assert host_group("h", "/a") == host_group("h", "/a") != host_group("h", "/b") != host_group("i", "/a")


def test_a_post_waits_for_as_many_feeds_as_were_counted_answers_early_or_late() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        acks = Acks(5.0, "g1")
        _, first = acks.ask()
        acks.heard(f"{first} g2.a")  # an answer before the count is known (the script's reply)
        waiter = asyncio.create_task(acks.wait(first, 2))
        await asyncio.sleep(0.01)
        pending = not waiter.done()
        acks.heard(f"{first} g2.a")  # the same feed twice counts once
        await asyncio.sleep(0.01)
        still = not waiter.done()
        acks.heard(f"{first},{first + 99} g3.b")
        return pending and still, await waiter, acks.late

    assert asyncio.run(scenario()) == (True, True, 0)


def test_no_feed_counted_waits_for_nothing_and_a_silent_one_for_the_longest() -> None:
    async def scenario() -> tuple[bool, float, bool, int]:
        acks = Acks(0.2, "g1")
        _, none = acks.ask()
        at_once = await acks.wait(none, 0)
        _, silent = acks.ask()
        began = time.monotonic()
        answered = await acks.wait(silent, 1)
        return at_once, time.monotonic() - began, answered, acks.late

    at_once, waited, answered, late = asyncio.run(scenario())
    assert at_once and not answered and late == 1
    assert 0.2 <= waited < 1.0


def test_an_unreadable_answer_is_ignored() -> None:
    async def scenario() -> bool:
        acks = Acks(0.05, "g1")
        _, number = acks.ask()
        acks.heard("not-a-number g2.a")
        return await acks.wait(number, 1)

    assert asyncio.run(scenario()) is False
