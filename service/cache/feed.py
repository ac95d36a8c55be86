"""The invalidation feed: one pub/sub subscription per worker that keeps its caches honest.

It applies invalidations to the in-process pages, and it notices when it can no longer vouch
for what the caches hold:
- quiet: no message or heartbeat reply for `stale_after` seconds (Redis frozen, or a network
  cut that TCP has not reported yet). The pages stop being served at once. `stale_after` is
  below the Redis socket timeout, so no post can have been acknowledged without its cache
  update (that takes a timed-out Redis call) before this worker stopped trusting its pages;
- broken or resubscribed (redis-py reconnects by itself): messages sent meanwhile are lost;
- moved: the Redis server answering is not the one this prefix's data was written on (restarted
  from a snapshot, a replica promoted), so the shared entries may be old.
A quiet subscription is given up after `reconnect_after` seconds and followed again on a new
connection: across a network cut the old socket's unacknowledged bytes wait out TCP's backed-off
retransmissions (seconds after a cut of seconds, growing with its length), while a new connection
is tried every `retry_seconds` and answers as soon as the link is back.
In the first two cases the worker is told when it last heard the feed (`on_lost`): it bypasses
the shared cache and invalidates every tag posted to since then before using it again. In the
third (`on_moved`) it drops every shared entry first. Either way the pages kept in process are
cleared when the feed comes back.

In a Redis Cluster (`nodes`) the feed subscribes on every master: a message published on any
node reaches all of them, and each subscription is also that master's heartbeat, so one master
lost, frozen or restarted is noticed as the single server's would be. The feed is back when every
master is heard again; the run checked then is every master's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis

from service.cache.acks import Acks, group_of, parse_ask
from service.cache.local import LocalCache
from service.cache.tags import DIRTY, EVERYTHING, CacheClient, TagCache

log = logging.getLogger(__name__)


class FeedQuiet(Exception):
    """A subscription heard nothing for reconnect_after seconds."""


class Feed:
    def __init__(self, client: CacheClient, cache: TagCache, local: LocalCache | None, *,
                 ping_interval: float, stale_after: float, retry_seconds: float,
                 on_lost: Callable[[datetime], None],
                 on_moved: Callable[[str], None], on_back: Callable[[], None],
                 nodes: Callable[[], Awaitable[list[redis.Redis]]] | None = None,
                 acks: Acks | None = None, reconnect_after: float = 0.0) -> None:
        self._client = client
        # Posts that ask are answered once applied (acks.py): this feed hears the answers to its
        # worker's posts on its own channel and, where the worker keeps pages, is counted among the
        # feeds that answer (the ackers channels) and answers on the poster's channel.
        self._acks = acks
        self._channels = [cache.channel]
        if acks is not None:
            self._channels.append(cache.ack_channel(acks.me))
            if local is not None:
                self._channels += [cache.ackers_channel, cache.group_channel(acks.group)]
        self._answers: dict[str, list[int]] = {}  # poster -> numbers applied, not answered yet
        self._answering: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference
        self._nodes = nodes  # a Redis Cluster: a client per master, asked again at each subscription
        self._heard: dict[int, float] = {}  # each subscription's last message or heartbeat reply
        self._confirmed: set[int] = set()  # subscriptions confirmed in this round
        self._cache = cache
        self._local = local
        self._ping = ping_interval
        self.stale_after = stale_after
        self._retry = retry_seconds
        self._reconnect_after = reconnect_after  # 0: keep waiting on the same connection
        self._on_lost = on_lost
        self._on_moved = on_moved
        self._on_back = on_back
        self._heard_at = 0.0  # monotonic
        self._heard_wall = datetime.now(UTC)
        self._lost = True  # until the first subscription: nothing to vouch for yet
        self._back_at = 0.0  # monotonic time the feed was last (re)established
        self._closed = False

    def trusted_for(self, seconds: float) -> bool:
        """Trusted, and continuously so for at least that long."""
        return self.trusted() and time.monotonic() - self._back_at >= seconds

    def trusted(self) -> bool:
        """Whether the shared cache may be used now: subscribed, and heard from recently. Checked
        on every search, so a freeze is noticed by the first search after the deadline even
        while this task waits on a slow socket."""
        return self.trusted_at(time.monotonic())

    def trusted_at(self, now: float) -> bool:
        """trusted(), at `now` (time.monotonic(), read once for a whole request by the caller)."""
        if self._lost:
            return False
        if now - self._heard_at > self.stale_after:
            self._lose(f"quiet for more than {self.stale_after} s")
            return False
        return True

    def close(self) -> None:
        """Stop following, within a heartbeat: the loops look at this as well as being cancelled,
        since a cancel that lands in redis-py's timed read can be swallowed there (seen: a worker's
        stop waited out close_resources' 5 s for the feed, about one stop in thirty)."""
        self._closed = True

    async def run(self) -> None:
        """For the worker's lifetime: re-subscribes after any failure."""
        try:
            while not self._closed:
                try:
                    await self._follow_all()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._lose(f"lost ({exc!r})")
                    await asyncio.sleep(self._retry)
        finally:
            self._silence()

    async def _follow_all(self) -> None:
        """One subscription per server (the one server, or every master of a cluster) until one of
        them fails; then the others are stopped too."""
        clients = await self._nodes() if self._nodes is not None else [self._client]
        self._heard = dict.fromkeys(range(len(clients)), 0.0)
        self._confirmed = set()
        tasks = [asyncio.create_task(self._follow(i, c)) for i, c in enumerate(clients)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._nodes is not None:
                for client in clients:
                    await client.aclose()

    async def _follow(self, node: int, client: redis.Redis | redis.RedisCluster) -> None:
        # Subscribe confirmations are kept: redis-py reconnects a broken pub/sub connection by
        # itself and subscribes again without raising.
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            await pubsub.subscribe(*self._channels)
            await self._listen(node, pubsub)
        finally:
            try:  # bounded: a broken connection must not hold the worker's shutdown
                await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]
            except Exception:  # noqa: S110 (the connection is already broken)
                pass

    async def _listen(self, node: int, pubsub: redis.client.PubSub) -> None:
        next_ping, began = 0.0, time.monotonic()
        while not self._closed:
            now = time.monotonic()
            quiet = now - max(self._heard[node], began)
            if self._reconnect_after and quiet > self._reconnect_after:
                raise FeedQuiet(f"nothing heard for {quiet:.2f} s: following on a new connection")
            if now >= next_ping:
                await pubsub.ping()
                next_ping = now + self._ping
            self.trusted()  # notices a quiet feed even when no search asks
            message = await pubsub.get_message(timeout=self._ping)
            if message is None:
                continue
            kind = message["type"]
            if kind == "subscribe" and message["data"] != len(self._channels):
                continue  # one of the channels: the subscription is whole at the last
            if kind == "subscribe":
                if not self._lost:
                    self._lose("resubscribed")  # redis-py reconnected by itself: messages were lost
                self._confirmed.add(node)
            if kind == "message":
                if self._acks is not None and _text(message["channel"]) == self._channels[1]:
                    self._acks.heard(message["data"])
                else:
                    self._apply(message["data"])
            self._hear(node)
            if self._lost and len(self._confirmed) == len(self._heard) and self._all_heard():
                await self._recover()
                self._hear(node)

    def _apply(self, data: bytes | str) -> None:
        """A message: the tags whose pages changed, or a post missing from the shared entries
        (TagCache.announce_dirty): then this worker is dirty since that post was made."""
        words = _text(data).split()
        if words[:1] == [DIRTY]:
            self._on_lost(_dirty_since(words[1] if len(words) > 1 else ""))
            words = words[2:]
        asked = parse_ask(words[0]) if words and len(self._channels) > 2 else None
        if asked is not None:
            words = words[1:]
        if self._local is not None:
            for tag in words:
                self._local.invalidate(tag)
        if asked is not None:
            self._answer(*asked)

    def _answer(self, poster: str, number: int) -> None:
        """Tell a poster of another group (its own is told through shared memory, and not counted)
        that its message was applied here, on its channel, the answers of one tick together."""
        assert self._acks is not None
        if group_of(poster) == self._acks.group:
            return
        if not self._answers:
            self._answering = asyncio.get_running_loop().create_task(self._send_answers())
        self._answers.setdefault(poster, []).append(number)

    async def _send_answers(self) -> None:
        await asyncio.sleep(0)  # the rest of this tick's messages join
        answers, self._answers = self._answers, {}
        assert self._acks is not None
        for poster, numbers in answers.items():
            try:
                await self._client.publish(self._cache.ack_channel(poster),
                                           f"{','.join(map(str, numbers))} {self._acks.me}")
            except Exception as exc:  # the poster waits its longest: safe, only slower
                log.warning("could not answer a post's ask: %r", exc)

    async def _recover(self) -> None:
        """Heard again after a loss: whatever happened meanwhile is unknown."""
        current, recorded = await self._cache.runs()
        if recorded is None:
            await self._cache.record_run(current)
        elif recorded != current:
            log.warning("Redis run changed (%s -> %s): cached entries may be old", recorded, current)
            self._on_moved(current)
        if self._local is not None:
            self._local.clear()
        self._lost = False
        self._back_at = time.monotonic()
        self._on_back()
        log.info("cache invalidation feed back")

    def _all_heard(self) -> bool:
        """Every subscription heard within the stale period (one frozen master keeps it lost)."""
        return time.monotonic() - min(self._heard.values()) <= self.stale_after

    def _hear(self, node: int) -> None:
        now = time.monotonic()
        self._heard[node] = now
        self._heard_at = min(self._heard.values())  # the subscription heard least recently
        if not self._lost:
            self._heard_wall = datetime.now(UTC) - timedelta(seconds=now - self._heard_at)
            if self._local is not None:
                self._local.live_until = self._heard_at + self.stale_after

    def _silence(self) -> None:
        if self._local is not None:
            self._local.active = False
            self._local.clear()

    def _lose(self, why: str) -> None:
        self._silence()
        if not self._lost:
            log.warning("cache invalidation feed %s; caches bypassed until it is back", why)
            self._lost = True
            self._on_lost(self._heard_wall)


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data


def _dirty_since(text: str) -> datetime:
    """A `!dirty` message's time. One without a readable, zoned time (only another Redis client
    could have published it) counts from the earliest time: every cached tag is repaired."""
    try:
        since: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        log.warning("a cache dirty message without a readable time (%r): every cached tag is repaired",
                    text[:64])
        return EVERYTHING
    return since
