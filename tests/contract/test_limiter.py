"""One limiter contract, on the memory backend and on a real Redis (one atomic Lua step)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.services import REDIS_URL, port_open, require
from tether.limits.limiter import Decision, Limiter, MemoryLimiter, Rate, open_limiter

RATE = Rate(refill_per_s=2, burst=3)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "redis":
        require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
        instance = open_limiter(REDIS_URL)
    else:
        instance = open_limiter("memory")
    yield instance
    await instance.close()


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_exact_numbers_with_an_injected_clock(limiter: Limiter) -> None:
    k = key()
    assert [await limiter.take(k, RATE, 100.0) for _ in range(3)] == [Decision(True)] * 3
    assert await limiter.take(k, RATE, 100.0) == Decision(False, 500)
    assert await limiter.take(k, RATE, 100.25) == Decision(False, 250)
    assert await limiter.take(k, RATE, 100.5) == Decision(True)
    assert await limiter.take(k, RATE, 200.0, cost=3) == Decision(True)
    refused = await limiter.take(k, RATE, 200.0, cost=4)
    assert not refused.allowed and refused.retry_after_ms >= 2**31 - 1
    assert await limiter.take(k, RATE, 99.0) == Decision(False, 500), "no refill backwards"
    other = key()
    assert await limiter.take(other, RATE, 200.0) == Decision(True), "keys are independent"


async def test_concurrent_takes_share_one_budget(limiter: Limiter) -> None:
    k = key()
    decisions = await asyncio.gather(*(limiter.take(k, Rate(0.001, 10), 50.0) for _ in range(40)))
    assert sum(d.allowed for d in decisions) == 10


@pytest.mark.redis
async def test_two_redis_limiters_share_one_budget() -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    first, second = open_limiter(REDIS_URL), open_limiter(REDIS_URL)
    try:
        k = key()
        takes = [(first if i % 2 else second).take(k, Rate(0.001, 7), 10.0) for i in range(30)]
        decisions = await asyncio.gather(*takes)
        assert sum(d.allowed for d in decisions) == 7
    finally:
        await first.close()
        await second.close()


async def test_memory_limiter_is_bounded() -> None:
    limiter = MemoryLimiter(max_keys=100)
    for i in range(1_000):
        await limiter.take(f"k{i}", RATE, 0.0)
    assert len(limiter) == 100
    assert await limiter.take("k999", RATE, 0.0) == Decision(True), "recent keys are kept"


def test_unknown_limiter_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported limiter URL"):
        open_limiter("memcached://x")


async def test_redis_limiter_fails_open_when_redis_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limiter = open_limiter(f"redis://127.0.0.1:{port}/0")
    try:
        decisions = [await limiter.take(key(), Rate(0.001, 1), 1.0) for _ in range(3)]
    finally:
        await limiter.close()
    assert decisions == [Decision(True)] * 3
