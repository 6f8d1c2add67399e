"""The file-lock manager: in one process, and across "processes" (two managers) on the
real Postgres (advisory locks) and Redis (SET NX PX + compare-and-delete)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.services import REDIS_URL, port_open, require
from tether.workspace.locks import (
    LocalLocks,
    LockTimeout,
    PostgresLocks,
    RedisLocks,
    asyncpg_dsn,
)

TIMEOUT_S = 5.0


Locks = LocalLocks | PostgresLocks | RedisLocks


async def writer(
    locks: Locks,
    path: str,
    name: str,
    log: list[str],
    inside: asyncio.Event | None = None,
    release: asyncio.Event | None = None,
) -> None:
    async with locks.hold(path, name, TIMEOUT_S):
        log.append(f"{name} in")
        if inside is not None:
            inside.set()
        if release is not None:
            await release.wait()
        for _ in range(5):
            await asyncio.sleep(0)  # let the other writer run if it could
        log.append(f"{name} out")


async def test_two_writers_on_one_path_serialize() -> None:
    locks = LocalLocks()
    log: list[str] = []
    async with asyncio.timeout(TIMEOUT_S):
        await asyncio.gather(
            writer(locks, "/w/a.py", "one", log), writer(locks, "/w/a.py", "two", log)
        )
    assert log == ["one in", "one out", "two in", "two out"]
    assert len(locks) == 0


async def test_writers_on_different_paths_do_not_wait_for_each_other() -> None:
    locks = LocalLocks()
    async with locks.hold("/w/a.py", "one", TIMEOUT_S), locks.hold("/w/b.py", "two", 0.1):
        assert len(locks) == 2
        assert locks.holder("/w/a.py") == "one"


async def test_an_exception_inside_releases_the_lock() -> None:
    locks = LocalLocks()
    with pytest.raises(RuntimeError, match="boom"):
        async with locks.hold("/w/a.py", "one", TIMEOUT_S):
            raise RuntimeError("boom")
    assert len(locks) == 0
    async with locks.hold("/w/a.py", "two", 0.1):
        assert locks.holder("/w/a.py") == "two"


async def test_ten_thousand_distinct_paths_leave_the_registry_empty() -> None:
    locks = LocalLocks()
    for index in range(10_000):
        async with locks.hold(f"/w/file{index}.py", "one", TIMEOUT_S):
            assert len(locks) == 1
    assert len(locks) == 0


async def test_a_timed_out_waiter_gets_a_clear_error_and_leaves_no_trace() -> None:
    locks = LocalLocks()
    async with locks.hold("/w/a.py", "run r1", TIMEOUT_S):
        with pytest.raises(
            LockTimeout, match=r"run r2 could not lock /w/a.py within 0.05s \(held by run r1\)"
        ):
            async with locks.hold("/w/a.py", "run r2", 0.05):
                pytest.fail("the waiter must not get the lock")
        assert len(locks) == 1
    assert len(locks) == 0


# ---------------------------------------------------------------- across processes


@pytest.fixture
def pg_dsn(pg_url: str) -> str:
    return asyncpg_dsn(pg_url)


async def cross_process_checks(first: Locks, second: Locks) -> None:
    path = f"/w/{uuid.uuid4().hex}.py"
    log: list[str] = []
    inside, release = asyncio.Event(), asyncio.Event()
    async with asyncio.timeout(4 * TIMEOUT_S):
        held = asyncio.create_task(writer(first, path, "one", log, inside, release))
        await inside.wait()
        with pytest.raises(LockTimeout):
            async with second.hold(path, "two", 0.2):
                pytest.fail("a second process must not get a held lock")
        waiting = asyncio.create_task(writer(second, path, "two", log))
        release.set()
        await asyncio.gather(held, waiting)
    assert log == ["one in", "one out", "two in", "two out"]
    with pytest.raises(RuntimeError, match="boom"):
        async with first.hold(path, "one", TIMEOUT_S):
            raise RuntimeError("boom")
    async with second.hold(path, "two", 1.0):
        pass


@pytest.mark.postgres
async def test_postgres_advisory_locks_serialize_two_managers(pg_dsn: str) -> None:
    await cross_process_checks(PostgresLocks(pg_dsn), PostgresLocks(pg_dsn))


@pytest.mark.postgres
async def test_postgres_lease_frees_the_lock_of_a_holder_that_hangs(pg_dsn: str) -> None:
    hung, other = PostgresLocks(pg_dsn, lease_s=1), PostgresLocks(pg_dsn)
    path = f"/w/{uuid.uuid4().hex}.py"
    inside, never = asyncio.Event(), asyncio.Event()

    async def hang() -> None:
        async with hung.hold(path, "hung", TIMEOUT_S):
            inside.set()
            await never.wait()

    task = asyncio.create_task(hang())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await inside.wait()
        async with other.hold(path, "other", TIMEOUT_S):
            pass  # granted once the idle holder's session (its lease) ended
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
async def redis_locks() -> AsyncIterator[tuple[RedisLocks, RedisLocks]]:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    prefix = f"tether-test:{uuid.uuid4().hex}:"
    first, second = RedisLocks(REDIS_URL, 5, prefix), RedisLocks(REDIS_URL, 5, prefix)
    yield first, second
    await first.close()
    await second.close()


async def test_redis_locks_serialize_two_managers(
    redis_locks: tuple[RedisLocks, RedisLocks],
) -> None:
    await cross_process_checks(*redis_locks)


async def test_redis_lock_lease_expires_for_a_crashed_holder() -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    prefix = f"tether-test:{uuid.uuid4().hex}:"
    crashed, other = RedisLocks(REDIS_URL, 1, prefix), RedisLocks(REDIS_URL, 5, prefix)
    try:
        path = "/w/a.py"
        # A holder that died after SET NX: its key stays until the lease (1 s) runs out.
        await crashed._redis.set(crashed.key(path), "dead", nx=True, px=1000)
        async with other.hold(path, "other", TIMEOUT_S):
            assert await other._redis.get(other.key(path)) not in (None, b"dead")
    finally:
        await crashed.close()
        await other.close()
