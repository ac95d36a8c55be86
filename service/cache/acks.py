"""A post is acknowledged only once every worker that could answer from an in-process copy of its
tags' pages has dropped it (POST_WAITS_FOR_WORKERS).

The in-process pages (local.py) are dropped by the feed's message (feed.py), which no one waited
for: a search sent the instant a post was answered could reach a worker of another instance before
that message did, and be answered from its pages without the post. Siblings on one host are told
at once through shared memory (generations.py); other instances share nothing but Redis. So a
post's message asks to be acknowledged: it opens with `^<group>.<worker>:<n>`, where the group is
the workers of one service on one host. In the round trip that publishes it, the feeds outside the
poster's group are counted (every feed subscribes to the ackers channel and to its group's); each
of them answers on the poster's own channel once it has applied the message, and the post waits
for that many answers before it is acknowledged. One instance alone counts none and waits for
nothing.

At most `wait_at_most`: a feed that has not answered by then has heard nothing from Redis since
the message was published (a subscription delivers in order), so it stopped vouching for its pages
FEED_STALE_AFTER after the last thing it heard; the post may be answered then. `wait_at_most` is
twice that, the margin covering a reply's time on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import secrets
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
ASK = "^"  # opens a post's message that asks every feed to answer (tags are word characters only)


@dataclass(slots=True)
class Waiting:
    """The feeds that answered one message, and how many its publication counted (None: not known
    yet, since answers can arrive before the script's reply)."""

    answered: set[str] = field(default_factory=set)
    needed: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.needed is not None and len(self.answered) >= self.needed:
            self.done.set()


class Acks:
    """This worker's asks and the answers to them, and its name among the feeds."""

    def __init__(self, wait_at_most: float, group: str, asks: bool = True) -> None:
        self.group = group
        self.asks = asks  # this worker's posts ask and wait (POST_WAITS_FOR_WORKERS)
        self.me = f"{group}.{os.getpid():x}{secrets.token_hex(4)}"
        self.wait_at_most = wait_at_most
        self._numbers = itertools.count(1)
        self._waiting: dict[int, Waiting] = {}
        self.late = 0  # posts answered after waiting wait_at_most for an answer (/metrics)

    def ask(self) -> tuple[str, int]:
        """The word a message opens with to ask for answers, and its number (wait() or forget() it)."""
        number = next(self._numbers)
        self._waiting[number] = Waiting()
        return f"{ASK}{self.me}:{number}", number

    def forget(self, number: int) -> None:
        self._waiting.pop(number, None)

    async def wait(self, number: int, counted: int) -> bool:
        """Until `counted` feeds have answered the message (False: waited wait_at_most instead)."""
        waiting = self._waiting.get(number)
        if waiting is None:
            return True
        waiting.needed = counted
        waiting.check()
        try:
            await asyncio.wait_for(waiting.done.wait(), self.wait_at_most)
            return True
        except TimeoutError:
            self.late += 1
            log.warning("a post waited %g s for %d of %d feeds to drop its pages", self.wait_at_most,
                        counted - len(waiting.answered), counted)
            return False
        finally:
            self.forget(number)

    def answered(self, numbers: list[int], by: str) -> None:
        for number in numbers:
            waiting = self._waiting.get(number)
            if waiting is not None:
                waiting.answered.add(by)
                waiting.check()

    def heard(self, data: bytes | str) -> None:
        """An answer on this worker's channel: `<n>[,<n>...] <feed>`."""
        text = data.decode() if isinstance(data, bytes) else data
        numbers, _, by = text.partition(" ")
        try:
            self.answered([int(n) for n in numbers.split(",")], by)
        except ValueError:
            log.warning("an unreadable answer on the ack channel: %r", text[:64])


def parse_ask(word: str) -> tuple[str, int] | None:
    """(poster, number) of a message's asking word, else None."""
    poster, _, number = word[len(ASK):].rpartition(":")
    return (poster, int(number)) if word.startswith(ASK) and poster and number.isdigit() else None


def group_of(poster: str) -> str:
    return poster.partition(".")[0]


def host_group(host: str, files: str) -> str:
    """The group of the workers sharing one host's files (generations.py): a short digest."""
    return hashlib.blake2s(f"{host}\0{files}".encode(), digest_size=5).hexdigest()
