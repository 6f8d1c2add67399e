"""Group commit vs one commit per append, on the same store in the same process.

    make bench              # SQLite in a temp dir (+ Postgres when reachable)

Prints appends/s for both and their ratio. The baseline is the same writer with
``write_batch_max=1``, so the ratio isolates what batching buys.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
import time
import uuid

from tether.store import NewEvent, SessionRecord, StoreTx, new_id, open_store, utcnow
from tether.store.sql.migrate import upgrade

APPENDERS = 64
APPENDS_EACH = 40


async def _session(store_url: str) -> str:
    store = open_store(store_url)
    await store.start(lambda events: None)
    now = utcnow()
    session = SessionRecord(new_id("s"), "bench", "t", "demo", {}, "enqueue", 1,
                            secrets.token_hex(8), 0, "idle", now, now)  # fmt: skip
    await store.write(lambda tx: tx.insert_session(session))
    await store.close()
    return session.id


async def appends_per_s(store_url: str, batch_max: int) -> float:
    session_id = await _session(store_url)
    store = open_store(store_url, batch_max=batch_max)
    await store.start(lambda events: None)

    async def appender() -> None:
        for i in range(APPENDS_EACH):
            event = NewEvent("text.delta", {"message_id": "m", "delta": f"t{i} "})

            async def op(tx: StoreTx, e: NewEvent = event) -> None:
                await tx.append(session_id, [e])

            await store.write(op)

    started = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(APPENDERS)))
    elapsed = time.perf_counter() - started
    head = await store.get_session(session_id)
    await store.close()
    assert head is not None and head.head_seq == APPENDERS * APPENDS_EACH, "log must be gapless"
    return APPENDERS * APPENDS_EACH / elapsed


async def compare(label: str, url: str) -> None:
    baseline = await appends_per_s(url, batch_max=1)
    grouped = await appends_per_s(url, batch_max=256)
    print(
        f"{label:8} one commit per append: {baseline:8.0f}/s   group commit: "
        f"{grouped:8.0f}/s   ratio {grouped / baseline:5.1f}x"
    )


def _postgres_url() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        return None
    return os.environ.get(
        "TETHER_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )


async def _pg_database(admin_url: str) -> tuple[str, str]:
    import asyncpg

    name = f"tether_bench_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


async def _drop(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    print(f"{APPENDERS} concurrent appenders x {APPENDS_EACH} appends to one session")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        upgrade(url)
        asyncio.run(compare("sqlite", url))
    admin = _postgres_url()
    if admin is None:
        print("postgres not reachable: skipped")
        return
    name, url = asyncio.run(_pg_database(admin))
    try:
        upgrade(url)
        asyncio.run(compare("postgres", url))
    finally:
        asyncio.run(_drop(admin, name))


if __name__ == "__main__":
    main()
