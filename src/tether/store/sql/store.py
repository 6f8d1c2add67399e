"""The SQL store: SQLite (aiosqlite, WAL) and Postgres (asyncpg) behind one class.

Writes go through the group-commit writer; reads use their own pool and run in one read
transaction each, so a snapshot is consistent. Every call has a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tether.store.contract import (
    INTERRUPT_PENDING,
    RUN_ACTIVE,
    CommandRecord,
    CommitHook,
    EventRecord,
    InterruptRecord,
    RunRecord,
    SearchContextRecord,
    SessionRecord,
    SnapshotData,
    StoreUnavailable,
    UsageRecord,
    WriteFn,
)
from tether.store.sql import search_context
from tether.store.sql import usage as usage_sql
from tether.store.sql.tables import commands, events, interrupts, runs, sessions
from tether.store.sql.tx import (
    SqlTx,
    event_from_row,
    interrupt_from_row,
    run_events_stmt,
    run_from_row,
    run_interrupts_stmt,
    session_from_row,
)
from tether.store.sql.writer import GroupWriter

T = TypeVar("T")
MESSAGE_KINDS = ("message.user", "message.assistant")
TOOL_KINDS = ("tool.started", "tool.finished")
SNAPSHOT_RUNS = 50
SNAPSHOT_MESSAGES = 500  # the newest; older ones are paged from the log (``history_before``)
SNAPSHOT_TOOL_EVENTS = 400


def _sqlite_engine(url: str, *, pool_size: int, begin: str) -> AsyncEngine:
    """An aiosqlite engine in WAL mode whose transactions start with ``begin``.

    pysqlite's own transaction handling is switched off so savepoints work and the writer
    can take the write lock up front (``BEGIN IMMEDIATE``) instead of failing to upgrade.
    """
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=5000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class SqlStore:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        batch_max: int = 256,
        queue_max: int = 10_000,
        observe_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.url = url
        self._timeout_s = timeout_s
        if url.startswith("sqlite"):
            self._write_engine = _sqlite_engine(url, pool_size=1, begin="BEGIN IMMEDIATE")
            self._read_engine = _sqlite_engine(url, pool_size=5, begin="BEGIN")
        else:
            self._write_engine = create_async_engine(url, pool_size=2, pool_pre_ping=True)
            self._read_engine = self._write_engine
        self._writer = GroupWriter(
            self._write_engine,
            SqlTx,
            batch_max=batch_max,
            queue_max=queue_max,
            timeout_s=timeout_s,
            observe_batch=observe_batch,
        )

    @property
    def dialect(self) -> str:
        return self._write_engine.dialect.name

    async def start(self, on_commit: CommitHook) -> None:
        self._writer.start(on_commit)

    async def close(self) -> None:
        await self._writer.stop()
        await self._write_engine.dispose()
        if self._read_engine is not self._write_engine:
            await self._read_engine.dispose()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with asyncio.timeout(self._timeout_s), self._read_engine.connect() as conn:
                if self.dialect == "postgresql":
                    conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn
        except TimeoutError:
            raise StoreUnavailable(f"store read timed out after {self._timeout_s}s") from None

    async def ping(self) -> None:
        async with self._reading() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def write(self, fn: WriteFn[T]) -> T:
        result: T = await self._writer.submit(fn)
        return result

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._reading() as conn:
            return await _session(conn, session_id)

    async def list_sessions(
        self, owner: str, limit: int, before_id: str | None = None
    ) -> list[SessionRecord]:
        stmt = sa.select(sessions).where(sessions.c.owner == owner)
        if before_id is not None:
            stmt = stmt.where(sessions.c.id < before_id)
        stmt = stmt.order_by(sessions.c.id.desc()).limit(limit)
        async with self._reading() as conn:
            return [session_from_row(row) for row in await conn.execute(stmt)]

    async def read_events(self, session_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        async with self._reading() as conn:
            session = await _session(conn, session_id)
            if session is None:
                return []
            stmt = (
                sa.select(events)
                .where(events.c.session_id == session_id, events.c.seq > after_seq)
                .order_by(events.c.seq)
                .limit(limit)
            )
            return [event_from_row(row, session.epoch) for row in await conn.execute(stmt)]

    async def read_snapshot(self, session_id: str) -> SnapshotData | None:
        async with self._reading() as conn:
            session = await _session(conn, session_id)
            if session is None:
                return None
            recent = await conn.execute(
                sa.select(runs)
                .where(runs.c.session_id == session_id)
                .order_by(runs.c.queue_seq.desc())
                .limit(SNAPSHOT_RUNS)
            )
            active = await conn.execute(
                sa.select(runs).where(
                    runs.c.session_id == session_id, runs.c.status.in_(sorted(RUN_ACTIVE))
                )
            )
            run_list = _merge_runs([run_from_row(r) for r in recent], active)
            live = [r.id for r in run_list if r.status in RUN_ACTIVE]
            messages = await _newest(conn, session_id, MESSAGE_KINDS, SNAPSHOT_MESSAGES)
            tools = await _newest(conn, session_id, TOOL_KINDS, SNAPSHOT_TOOL_EVENTS)
            deltas = await conn.execute(
                sa.select(events).where(
                    events.c.session_id == session_id,
                    events.c.kind == "text.delta",
                    events.c.run_id.in_(live),
                )
            )
            cut = messages[-1].seq if len(messages) == SNAPSHOT_MESSAGES else None
            rows = sorted([*messages, *tools, *deltas], key=lambda row: int(row.seq))
            message_events = [
                event_from_row(row, session.epoch) for row in rows if cut is None or row.seq >= cut
            ]
            pending = await conn.execute(
                sa.select(interrupts)
                .where(interrupts.c.session_id == session_id, interrupts.c.status == "pending")
                .order_by(interrupts.c.created_at)
            )
            waiting = [interrupt_from_row(row) for row in pending]
            return SnapshotData(session, message_events, run_list, waiting, history_before=cut)

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._reading() as conn:
            row = (await conn.execute(sa.select(runs).where(runs.c.id == run_id))).first()
            return run_from_row(row) if row else None

    async def list_runs(self, session_id: str, limit: int) -> list[RunRecord]:
        stmt = (
            sa.select(runs)
            .where(runs.c.session_id == session_id)
            .order_by(runs.c.queue_seq.desc())
            .limit(limit)
        )
        async with self._reading() as conn:
            return [run_from_row(row) for row in await conn.execute(stmt)]

    async def get_command(self, session_id: str, command_id: str) -> CommandRecord | None:
        stmt = sa.select(commands.c.kind, commands.c.result).where(
            commands.c.session_id == session_id, commands.c.command_id == command_id
        )
        async with self._reading() as conn:
            row = (await conn.execute(stmt)).first()
        return CommandRecord(session_id, command_id, row.kind, dict(row.result)) if row else None

    async def expired_runs(self, now_ms: int, limit: int) -> list[RunRecord]:
        stmt = (
            sa.select(runs)
            .where(runs.c.status.in_(sorted(RUN_ACTIVE)), runs.c.lease_expires_ms < now_ms)
            .order_by(runs.c.lease_expires_ms)
            .limit(limit)
        )
        async with self._reading() as conn:
            return [run_from_row(row) for row in await conn.execute(stmt)]

    async def latest_checkpoint(self, session_id: str) -> str | None:
        """The message history left by the session's most recent completed run."""
        stmt = (
            sa.select(runs.c.checkpoint)
            .where(
                runs.c.session_id == session_id,
                runs.c.status == "completed",
                runs.c.checkpoint.is_not(None),
            )
            .order_by(runs.c.queue_seq.desc())
            .limit(1)
        )
        async with self._reading() as conn:
            value = (await conn.execute(stmt)).scalar_one_or_none()
        return str(value) if value is not None else None

    async def list_interrupts(
        self, session_id: str, status: str | None, limit: int
    ) -> list[InterruptRecord]:
        stmt = sa.select(interrupts).where(interrupts.c.session_id == session_id)
        if status is not None:
            stmt = stmt.where(interrupts.c.status == status)
        stmt = stmt.order_by(interrupts.c.created_at.desc()).limit(limit)
        async with self._reading() as conn:
            return [interrupt_from_row(row) for row in await conn.execute(stmt)]

    async def pending_interrupt_counts(self, session_ids: Sequence[str]) -> dict[str, int]:
        if not session_ids:
            return {}
        stmt = (
            sa.select(interrupts.c.session_id, sa.func.count())
            .where(
                interrupts.c.session_id.in_(list(session_ids)),
                interrupts.c.status == INTERRUPT_PENDING,
            )
            .group_by(interrupts.c.session_id)
        )
        async with self._reading() as conn:
            return {row[0]: int(row[1]) for row in await conn.execute(stmt)}

    async def get_interrupt(self, interrupt_id: str) -> InterruptRecord | None:
        stmt = sa.select(interrupts).where(interrupts.c.id == interrupt_id)
        async with self._reading() as conn:
            row = (await conn.execute(stmt)).first()
        return interrupt_from_row(row) if row else None

    async def run_interrupts(self, run_id: str) -> list[InterruptRecord]:
        async with self._reading() as conn:
            rows = await conn.execute(run_interrupts_stmt(run_id, None))
            return [interrupt_from_row(row) for row in rows]

    async def due_interrupts(self, now_ms: int, limit: int) -> list[InterruptRecord]:
        stmt = (
            sa.select(interrupts)
            .where(interrupts.c.status == "pending", interrupts.c.expires_at_ms <= now_ms)
            .order_by(interrupts.c.expires_at_ms)
            .limit(limit)
        )
        async with self._reading() as conn:
            return [interrupt_from_row(row) for row in await conn.execute(stmt)]

    async def run_events(
        self, session_id: str, run_id: str, kinds: frozenset[str]
    ) -> list[EventRecord]:
        async with self._reading() as conn:
            session = await _session(conn, session_id)
            if session is None:
                return []
            rows = await conn.execute(run_events_stmt(session_id, run_id, kinds))
            return [event_from_row(row, session.epoch) for row in rows]

    async def get_search_context(
        self, session_id: str, query_key: str
    ) -> SearchContextRecord | None:
        async with self._reading() as conn:
            return await search_context.get(conn, session_id, query_key)

    async def list_search_context(self, session_id: str, limit: int) -> list[SearchContextRecord]:
        async with self._reading() as conn:
            return await search_context.recent(conn, session_id, limit)

    async def get_usage(self, owner: str, day: str) -> UsageRecord:
        async with self._reading() as conn:
            return await usage_sql.get_usage(conn, owner, day)

    async def count_active_runs(self, owner: str) -> int:
        async with self._reading() as conn:
            return await SqlTx(conn).count_active_runs(owner)


async def _newest(
    conn: AsyncConnection, session_id: str, kinds: tuple[str, ...], limit: int
) -> list[Row[Any]]:
    """The session's ``limit`` newest events of ``kinds``, newest first."""
    rows = await conn.execute(
        sa.select(events)
        .where(events.c.session_id == session_id, events.c.kind.in_(kinds))
        .order_by(events.c.seq.desc())
        .limit(limit)
    )
    return list(rows)


async def _session(conn: AsyncConnection, session_id: str) -> SessionRecord | None:
    row = (await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
    return session_from_row(row) if row else None


def _merge_runs(recent: list[RunRecord], active: Any) -> list[RunRecord]:
    by_id = {run.id: run for run in recent}
    for row in active:
        run = run_from_row(row)
        by_id.setdefault(run.id, run)
    return sorted(by_id.values(), key=lambda run: run.queue_seq)
