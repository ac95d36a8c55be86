"""The tag cache: per tag, the newest tweets as serialized JSON bytes in one Redis sorted set.

Layout of `{prefix}:t:{tag}` (one key, so eviction and expiry take it whole; with REDIS_CLUSTER
`{prefix}:t:{{tag}}`: the braces make a tag's entry and version hash to one slot):
  member = a tweet's JSON bytes, score = tweet id   -> newest first is ZREVRANGE
  member = "#n", score = -(total + 1)               -> the tag's exact total, ranked last
It holds the newest `size` tweets of the tag, or all of them when there are fewer.

Coherence: `{prefix}:v:{tag}` counts posts to the tag. A fill reads it before querying
PostgreSQL and writes only if it is unchanged (checked inside Redis, atomically), so a fill
that raced with a post never stores a list missing that post. A post adds itself only to an
entry that exists: it never creates a partial entry. Values are JSON bytes, never eval'd or
unpickled; the hit path returns them as they are.

"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError

from service.cache.batch import Batcher
from service.cache.wire import WireClient

TOTAL = b"#n"
DIRTY = "!dirty"  # the feed message that opens announce_dirty's (tags are word characters only)
EVERYTHING = datetime.min.replace(tzinfo=UTC)  # dirty since: every cached entry is suspect
Arg = bytes | str | int | float
Posted = tuple[Sequence[str], int, bytes]  # a committed post's tags, tweet id and tweet bytes
CacheClient = redis.Redis | redis.RedisCluster

# KEYS: entry, version. ARGV: expected version ('' = none), ttl ms, total, then score/member pairs.
FILL = """
local v = redis.call('GET', KEYS[2]) or ''
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[1], -1 - tonumber(ARGV[3]), '#n')
local i = 4
while i <= #ARGV do
  local last = math.min(i + 399, #ARGV)
  redis.call('ZADD', KEYS[1], unpack(ARGV, i, last))
  i = last + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# After posts commit, for all of them and all their tags in one call, with one message.
# KEYS: each post's tags' entry and version, post after post (entry1, version1, entry2, ...).
# ARGV: size bound, version ttl ms, channel, message (space-separated tags), then per post: tweet
# id, tweet bytes, its number of tags.
ADD = """
redis.call('PUBLISH', ARGV[3], ARGV[4])
local k = 1
for i = 5, #ARGV, 3 do
  local id, body = ARGV[i], ARGV[i + 1]
  for _ = 1, tonumber(ARGV[i + 2]) do
    local entry, version = KEYS[k], KEYS[k + 1]
    k = k + 2
    redis.call('INCR', version)
    redis.call('PEXPIRE', version, ARGV[2])
    if redis.call('EXISTS', entry) == 1 and redis.call('ZCOUNT', entry, id, id) == 0 then
      redis.call('ZADD', entry, id, body)
      redis.call('ZINCRBY', entry, -1, '#n')
      local extra = redis.call('ZCARD', entry) - 1 - tonumber(ARGV[1])
      if extra > 0 then redis.call('ZREMRANGEBYRANK', entry, 1, extra) end
    end
  end
end
return 1
"""

# Redis Cluster: one tag's keys per call (a script may only touch one slot); the calls for all
# the posts' tags go in one pipelined round trip, and the message is published after them.
# KEYS: entry, version. ARGV: size bound, version ttl ms, then tweet id / tweet bytes pairs.
ADD_ONE = """
local entry = KEYS[1]
for i = 3, #ARGV, 2 do
  redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  if redis.call('EXISTS', entry) == 1 and redis.call('ZCOUNT', entry, ARGV[i], ARGV[i]) == 0 then
    redis.call('ZADD', entry, ARGV[i], ARGV[i + 1])
    redis.call('ZINCRBY', entry, -1, '#n')
    local extra = redis.call('ZCARD', entry) - 1 - tonumber(ARGV[1])
    if extra > 0 then redis.call('ZREMRANGEBYRANK', entry, 1, extra) end
  end
end
return 1
"""


def window_answers(found: int, count: int, cached: int, total: int, offset: int,
                   before_id: int | None) -> bool:
    """Whether a page read from a tag's cached window (the newest `cached` of `total` tweets) is
    the true page: it is full, or the window holds every tweet, or (by offset) the page reaches
    the last tweet. Otherwise tweets beyond the window may belong on it: ask PostgreSQL."""
    if found == count or cached >= total:
        return True
    return before_id is None and offset + found >= total


@dataclass(frozen=True, slots=True)
class Page:
    """Tweets (JSON bytes, newest first) and the tag's total; complete=False means the cached
    window does not reach that far and the caller must ask PostgreSQL."""

    items: list[bytes]
    total: int
    complete: bool


@dataclass(frozen=True, slots=True)
class Miss:
    """No entry for the tag; its version as read in the same round trip (None: not read), for the
    fill that follows."""

    version: bytes | None


class TagCache:
    def __init__(self, client: CacheClient, prefix: str, ttl_seconds: int, jitter: float,
                 size: int, pipeline: bool, read_version: bool = True,
                 wire: WireClient | None = None, cluster: bool = False) -> None:
        self._r = client
        self._cluster = cluster
        self._prefix = prefix
        self._ttl_ms = ttl_seconds * 1000
        self._jitter = jitter
        self.size = size
        self._pipeline = pipeline
        # Read the tag's version with every page: a miss then needs no round trip of its own for
        # it before the fill (one GET more in each pipelined read).
        self._read_version = read_version and pipeline
        # The lean client (wire.py) when given, else redis-py. Pipelining: commands of concurrent
        # requests share round trips (wire.py itself, or batch.py over redis-py); switched off,
        # every command is its own round trip.
        self._send: Callable[..., Awaitable[Any]]
        self._send_many: Callable[[list[tuple[Arg, ...]]], Awaitable[list[Any]]]
        if wire is not None:
            self._send, self._send_many = wire.call, wire.call_many
        else:
            self._send = Batcher(client).call if pipeline else client.execute_command
            self._send_many = self._gathered
        # Scripts run by SHA; redis-py's Script objects would add a SCRIPT EXISTS round trip to
        # every pipeline, so load them ourselves (again after a Redis restart forgets them).
        self._sha = {FILL: "", ADD_ONE if cluster else ADD: ""}  # the scripts this mode runs

    async def _load_scripts(self) -> None:
        for source in self._sha:
            self._sha[source] = await self._r.script_load(source)

    async def _gathered(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """Several commands sent together (queued in the same tick: one round trip when pipelined)."""
        return list(await asyncio.gather(*(self._send(*c) for c in commands)))

    async def _run(self, calls: list[tuple[str, int, list[Arg]]],
                   first: Sequence[tuple[Arg, ...]] = ()) -> list[Any]:
        """EVALSHA each (script, number of keys, keys+args) call, after the commands `first` in
        the same round trip (their replies first)."""
        for attempt in (1, 2):
            if not all(self._sha.values()):
                await self._load_scripts()
            try:
                scripts = [("EVALSHA", self._sha[s], n, *args) for s, n, args in calls]
                return await self._send_many([*first, *scripts])
            except NoScriptError:
                if attempt == 2:
                    raise
                self._sha = dict.fromkeys(self._sha, "")
        raise AssertionError("unreachable")

    @property
    def channel(self) -> str:
        """Pub/sub channel carrying the tags whose cached pages changed."""
        return f"{self._prefix}:inv"

    @property
    def run_key(self) -> str:
        """Holds the run id of the Redis server that this prefix's data was written on."""
        return f"{self._prefix}:run"

    def entry_key(self, tag: str) -> str:
        return f"{self._prefix}:t:{{{tag}}}" if self._cluster else f"{self._prefix}:t:{tag}"

    def version_key(self, tag: str) -> str:
        return f"{self._prefix}:v:{{{tag}}}" if self._cluster else f"{self._prefix}:v:{tag}"

    def tag_of(self, key: bytes | str) -> str:
        """The tag of an entry key (as SCAN returns it)."""
        text = key.decode() if isinstance(key, bytes) else key
        tag = text[len(f"{self._prefix}:t:"):]
        return tag[1:-1] if self._cluster else tag

    def _ttl(self) -> int:
        # Jitter spreads expiries so entries filled together do not all miss together.
        return int(self._ttl_ms * (1 + random.uniform(-self._jitter, self._jitter)))

    async def read(self, tag: str, offset: int, count: int, before_id: int | None) -> Page | Miss:
        """One round trip (pipelined): the page's members and the total; on a miss, the version."""
        key = self.entry_key(tag)
        first: tuple[Arg, ...]
        if before_id is None:
            first = ("ZREVRANGE", key, offset, offset + count - 1)
        else:
            first = ("ZREVRANGEBYSCORE", key, f"({before_id}", 1, "LIMIT", offset, count)
        version: bytes | None = None
        if self._pipeline:  # one round trip
            commands: list[tuple[Arg, ...]] = [first, ("ZSCORE", key, TOTAL), ("ZCARD", key)]
            if self._read_version:
                commands.append(("GET", self.version_key(tag)))
            members, score, card, *rest = await self._send_many(commands)
            if rest:
                version = _bytes(rest[0])
        else:
            members = await self._send(*first)
            score = await self._send("ZSCORE", key, TOTAL)
            card = await self._send("ZCARD", key)
        if score is None:
            return Miss(version)
        total = -int(float(score)) - 1
        items = [m for m in members if m != TOTAL]
        return Page(items, total, window_answers(len(items), count, card - 1, total, offset, before_id))

    async def version(self, tag: str) -> bytes:
        return _bytes(await self._send("GET", self.version_key(tag)))

    async def fill(self, tag: str, version: bytes, total: int,
                   tweets: Sequence[tuple[int, bytes]]) -> bool:
        """Store a tag's newest tweets, unless a post changed the tag since `version` was read."""
        args: list[Arg] = [self.entry_key(tag), self.version_key(tag), version, self._ttl(), total]
        for tweet_id, body in tweets[: self.size]:
            args += [tweet_id, body]
        (stored,) = await self._run([(FILL, 2, args)])
        return bool(stored)

    async def add_many(self, posts: Sequence[Posted], ask: str = "", group: str = "") -> int:
        """After posts commit: add each to each of its tags' entries that exist, bump each tag's
        version once a post and tell the workers (one pub/sub message for all), in one script
        call; in a Redis Cluster one call per tag, all in one round trip, then the message.
        `ask`: the message opens with it (service/cache/acks.py), and the feeds that answer asks,
        outside the poster's `group`, are counted first, in the same round trip: the count is
        returned (0 without `ask`)."""
        tagged = dict.fromkeys(tag for tags, _, _ in posts for tag in tags)
        message = " ".join([ask, *tagged] if ask else tagged)
        size, ttl = self.size, self._ttl_ms * 2
        count: tuple[Arg, ...] = ("PUBSUB", "NUMSUB", self.ackers_channel, self.group_channel(group))
        if self._cluster:
            by_tag: dict[str, list[Arg]] = {}
            for tags, tweet_id, body in posts:
                for tag in tags:
                    by_tag.setdefault(tag, [self.entry_key(tag), self.version_key(tag), size, ttl]) \
                        .extend((tweet_id, body))
            counted = await self._count_on_one_master(count) if ask else 0
            await self._run([(ADD_ONE, 2, args) for args in by_tag.values()])
            await self._send("PUBLISH", self.channel, message)
            return counted
        keys: list[Arg] = []
        args: list[Arg] = [size, ttl, self.channel, message]
        for tags, tweet_id, body in posts:
            for tag in tags:
                keys += [self.entry_key(tag), self.version_key(tag)]
            args += [tweet_id, body, len(tags)]
        if not ask:
            await self._run([(ADD, len(keys), keys + args)])
            return 0
        # Counted before the message is published: a feed counted has it, or left (then the post
        # waits its longest), and one subscribing in between clears its pages as it begins.
        numbers, _ = await self._run([(ADD, len(keys), keys + args)], first=[count])
        return _outside(numbers)

    async def _count_on_one_master(self, count: tuple[Arg, ...]) -> int:
        """In a cluster every feed subscribes on every master, so each master counts every feed
        (redis-py would ask them all and add the counts up)."""
        assert isinstance(self._r, redis.RedisCluster)
        reply = await self._r.execute_command(*count, target_nodes=self._r.get_primaries()[:1])
        return _outside(reply)

    @property
    def ackers_channel(self) -> str:
        """Every feed that answers asks subscribes here too: PUBSUB NUMSUB counts them."""
        return f"{self._prefix}:ackers"

    def group_channel(self, group: str) -> str:
        """...and here, with the other workers of its service on its host (its group)."""
        return f"{self._prefix}:ackers:{group}"

    def ack_channel(self, worker: str) -> str:
        """Where feeds answer the asks of this worker's posts."""
        return f"{self._prefix}:ack:{worker}"

    async def announce_dirty(self, tags: Sequence[str], since: datetime) -> None:
        """Tell every worker that a post to these tags, made at `since`, is missing from the shared
        entries (Redis refused its update): they drop their pages of the tags and bypass the cache
        until they have repaired it (service/cache/feed.py)."""
        await self._send("PUBLISH", self.channel, " ".join([DIRTY, since.isoformat(), *tags]))

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Drop entries and bump versions (so in-flight fills for them are discarded too)."""
        commands: list[tuple[Arg, ...]] = []
        for tag in tags:
            commands += [("DEL", self.entry_key(tag)), ("INCR", self.version_key(tag))]
        commands.append(("PUBLISH", self.channel, " ".join(tags)))
        await self._send_many(commands)

    async def cached_tags(self) -> list[str]:
        """Every tag with an entry under this prefix (SCAN: does not block Redis)."""
        return [self.tag_of(key) async for key in self._r.scan_iter(match=self.entry_key("*"), count=1000)]

    async def runs(self) -> tuple[str, str | None]:
        """(the answering Redis server's run id, the run this prefix's data was written on).
        They differ after a restart from a snapshot or a replica's promotion: old data."""
        if isinstance(self._r, redis.RedisCluster):  # every master's: any one restarted counts
            infos = await self._r.execute_command("INFO", "server", target_nodes=self._r.get_primaries())
            current = ",".join(sorted(str(info["run_id"]) for info in infos.values()))
        else:
            current = str((await self._r.info("server"))["run_id"])
        recorded = await self._r.get(self.run_key)
        return current, recorded.decode() if isinstance(recorded, bytes) else recorded

    async def record_run(self, run: str) -> None:
        await self._r.set(self.run_key, run)


def _outside(reply: list[Any]) -> int:
    """PUBSUB NUMSUB's reply for (all the feeds, the poster's group): the feeds outside the group.
    Flat from the lean client, (channel, count) pairs from redis-py."""
    flat = [v for item in reply for v in (item if isinstance(item, tuple | list) else (item,))]
    return int(flat[1]) - int(flat[3])


def _bytes(value: object) -> bytes:
    """A version as Redis returned it (absent: the empty version)."""
    if isinstance(value, str):
        return value.encode()
    return value if isinstance(value, bytes) else b""
