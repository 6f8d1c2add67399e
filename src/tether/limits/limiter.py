"""Keyed token buckets behind one small interface, chosen by URL (``TETHER_LIMITER_URL``).

- ``memory``: buckets in this process, in a bounded LRU (an evicted key starts full again;
  the bound keeps a flood of distinct keys from growing memory).
- ``redis://…``: one atomic Lua step per ``take``, so every instance shares one budget;
  each bucket key expires once it would be full again, so idle keys cost nothing.

The caller passes ``now_s`` (wall-clock seconds, shared by instances); nothing here reads
a clock, so tests assert exact numbers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from tether.limits.bucket import TokenBucket

log = structlog.get_logger(__name__)

MEMORY_MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` tokens at most, refilled at ``refill_per_s``."""

    refill_per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_ms: int = 0


def _decision(wait_s: float) -> Decision:
    if wait_s <= 0:
        return Decision(True)
    if math.isinf(wait_s):
        return Decision(False, 2**31 - 1)
    return Decision(False, max(1, math.ceil(wait_s * 1000)))


class Limiter(Protocol):
    async def take(self, key: str, rate: Rate, now_s: float, cost: float = 1.0) -> Decision:
        """Spend ``cost`` tokens from ``key``'s bucket, or say how long to wait."""
        ...

    async def close(self) -> None: ...


class MemoryLimiter:
    def __init__(self, max_keys: int = MEMORY_MAX_KEYS) -> None:
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max_keys = max_keys

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, key: str, rate: Rate, now_s: float, cost: float = 1.0) -> Decision:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(rate.burst, rate.refill_per_s, now_s)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return _decision(bucket.take(now_s, cost))

    async def close(self) -> None:
        self._buckets.clear()


# KEYS[1] = bucket; ARGV = capacity, refill_per_s, cost, now_s.
# Returns {allowed (0/1), wait in ms (string: Lua numbers become integers)}.
TAKE_LUA = """
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  updated = now
end
local elapsed = math.max(0, now - updated)
tokens = math.min(capacity, tokens + elapsed * refill)
updated = math.max(updated, now)
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif cost > capacity then
  wait = -1
else
  wait = (cost - tokens) / refill
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(updated))
local ttl_ms = math.ceil((capacity - tokens) / refill * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return {allowed, tostring(wait)}
"""


class RedisLimiter:
    """Buckets in Redis under ``prefix``; one ``EVALSHA`` per ``take``.

    Fails open: when Redis does not answer, the take is allowed (and logged), so a limiter
    outage degrades protection instead of refusing every user."""

    def __init__(self, url: str, prefix: str = "tether:rl:") -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._script = self._redis.register_script(TAKE_LUA)
        self._prefix = prefix

    async def take(self, key: str, rate: Rate, now_s: float, cost: float = 1.0) -> Decision:
        args: list[int | str] = [
            rate.burst,
            repr(float(rate.refill_per_s)),
            repr(float(cost)),
            repr(now_s),
        ]
        try:
            allowed, wait = await self._script(keys=[self._prefix + key], args=args)
        except (RedisError, OSError) as exc:
            log.warning("limiter_unavailable_failing_open", error=str(exc))
            return Decision(True)
        if int(allowed) == 1:
            return Decision(True)
        wait_s = float(wait)
        return _decision(math.inf if wait_s < 0 else wait_s)

    async def close(self) -> None:
        await self._redis.aclose()


def open_limiter(url: str) -> Limiter:
    """A limiter for ``url``: ``memory`` or ``redis://…``/``rediss://…``."""
    if url == "memory":
        return MemoryLimiter()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLimiter(url)
    raise ValueError(f"unsupported limiter URL {url!r}: use 'memory' or 'redis://host:port/db'")
