"""The file-lock manager: ``async with locks.hold(path, owner, timeout_s): ...``.

- ``LocalLocks``: one ``asyncio.Lock`` per path, created on first use and forgotten when
  nobody holds or waits for it, so the registry does not grow with distinct paths.
- ``PostgresLocks``: the local lock, then a session-level advisory lock on a 64-bit hash
  of the path, on a dedicated connection whose ``idle_session_timeout`` is the lease: a
  holder that hangs (or dies) loses the lock after ``lease_s`` instead of blocking forever.
- ``RedisLocks``: the local lock, then ``SET key token NX PX lease`` (retried until the
  deadline) and a compare-and-delete release in Lua, so only the holder releases it.

A waiter that cannot get the lock within ``timeout_s`` gets ``LockTimeout``. The lock is
always released when the block ends, by return or by exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

RETRY_MIN_S = 0.01
RETRY_MAX_S = 0.2


class LockTimeout(TimeoutError):
    def __init__(self, path: str, owner: str, timeout_s: float, holder: str | None) -> None:
        by = f" (held by {holder})" if holder else ""
        super().__init__(f"{owner} could not lock {path} within {timeout_s}s{by}")
        self.path = path
        self.code = "busy"


class FileLocks(Protocol):
    def hold(
        self, path: str, owner: str, timeout_s: float
    ) -> contextlib.AbstractAsyncContextManager[None]: ...


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    holder: str | None = None


class LocalLocks:
    """Per-path locks within one process (one event loop)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Paths currently held or waited for (0 when idle)."""
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release: locks live only while held."""

    def holder(self, path: str) -> str | None:
        entry = self._entries.get(path)
        return entry.holder if entry else None

    @contextlib.asynccontextmanager
    async def hold(self, path: str, owner: str, timeout_s: float) -> AsyncIterator[None]:
        entry = self._entries.setdefault(path, _Entry())
        entry.users += 1
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    await entry.lock.acquire()
            except TimeoutError:
                raise LockTimeout(path, owner, timeout_s, entry.holder) from None
            entry.holder = owner
            try:
                yield
            finally:
                entry.holder = None
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[path]


def advisory_key(path: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` (namespaced, stable across processes)."""
    digest = hashlib.sha256(b"tether-file-lock\0" + path.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def asyncpg_dsn(store_url: str) -> str:
    return store_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresLocks:
    """Across processes that share one Postgres database."""

    def __init__(self, dsn: str, lease_s: float = 30.0) -> None:
        self._dsn = dsn
        self._lease_ms = max(1000, int(lease_s * 1000))
        self._local = LocalLocks()

    async def close(self) -> None:
        """Nothing to release: each hold uses and closes its own connection."""

    @contextlib.asynccontextmanager
    async def hold(self, path: str, owner: str, timeout_s: float) -> AsyncIterator[None]:
        import asyncpg

        deadline = time.monotonic() + timeout_s
        async with self._local.hold(path, owner, timeout_s):
            remaining = max(0.001, deadline - time.monotonic())
            conn = await asyncio.wait_for(asyncpg.connect(self._dsn), remaining)
            try:
                await self._acquire(conn, path, owner, timeout_s, deadline)
                try:
                    yield
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            conn.execute("SELECT pg_advisory_unlock($1)", advisory_key(path)), 5
                        )
            finally:
                if not conn.is_closed():
                    await _close(conn)

    async def _acquire(
        self, conn: Any, path: str, owner: str, timeout_s: float, deadline: float
    ) -> None:
        import asyncpg

        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        await conn.execute(f"SET lock_timeout = {remaining_ms}")
        await conn.execute(f"SET idle_session_timeout = {self._lease_ms}")
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", advisory_key(path))
        except asyncpg.exceptions.LockNotAvailableError:
            raise LockTimeout(path, owner, timeout_s, None) from None


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:
        conn.terminate()


RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLocks:
    """Across processes that share one Redis."""

    def __init__(self, url: str, lease_s: float = 30.0, prefix: str = "tether:filelock:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._lease_ms = max(1000, int(lease_s * 1000))
        self._prefix = prefix
        self._local = LocalLocks()
        self._release = self._redis.register_script(RELEASE_LUA)

    async def close(self) -> None:
        await self._redis.aclose()

    def key(self, path: str) -> str:
        return self._prefix + hashlib.sha256(path.encode()).hexdigest()

    @contextlib.asynccontextmanager
    async def hold(self, path: str, owner: str, timeout_s: float) -> AsyncIterator[None]:
        token = f"{owner}:{os.urandom(8).hex()}"
        key = self.key(path)
        async with self._local.hold(path, owner, timeout_s):
            await self._acquire(key, token, path, owner, timeout_s)
            try:
                yield
            finally:
                await asyncio.wait_for(self._release(keys=[key], args=[token]), 5)

    async def _acquire(self, key: str, token: str, path: str, owner: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pause_s = RETRY_MIN_S
        while not await self._redis.set(key, token, nx=True, px=self._lease_ms):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holder = await self._redis.get(key)
                by = holder.decode() if isinstance(holder, bytes) else holder
                raise LockTimeout(path, owner, timeout_s, by)
            await asyncio.sleep(min(pause_s, remaining))  # polling: Redis has no lock queue
            pause_s = min(RETRY_MAX_S, pause_s * 2)


def open_locks(store_url: str, lease_s: float) -> LocalLocks | PostgresLocks | RedisLocks:
    """The lock manager that matches the store: Postgres or Redis across processes."""
    if store_url.startswith("postgresql"):
        return PostgresLocks(asyncpg_dsn(store_url), lease_s)
    if store_url.startswith(("redis://", "rediss://")):
        return RedisLocks(store_url, lease_s)
    return LocalLocks()
