"""One unit of work on a SQL connection: the ``StoreTx`` operations.

``append`` assigns ``seq`` by bumping ``sessions.head_seq`` with ``UPDATE … RETURNING``: the
row lock (Postgres) or the write lock (SQLite, ``BEGIN IMMEDIATE``) makes it atomic and a
rollback leaves no gap. No database sequence is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.store.contract import (
    RUN_OPEN,
    CommandRecord,
    EventRecord,
    InterruptRecord,
    NewEvent,
    NotFound,
    RunRecord,
    SearchContextRecord,
    SessionRecord,
    UsageRecord,
    VersionConflict,
    utcnow,
)
from tether.store.sql import search_context
from tether.store.sql import usage as usage_sql
from tether.store.sql.tables import (
    SESSION_CHILDREN,
    commands,
    events,
    interrupts,
    runs,
    sessions,
)

SESSION_FIELDS = frozenset({"title", "agent", "metadata", "policy", "status", "epoch"})
# A session with a queued or running run is never idle, however old its last event
# (a session waiting for a person is idle: its interrupt has its own deadline).
BUSY_STATUSES = ("running", "queued")
RUN_FIELDS = frozenset(
    {"status", "attempt", "error", "usage", "checkpoint", "lease_owner", "lease_expires_ms"}
)


def session_from_row(row: Row[Any]) -> SessionRecord:
    m = row._mapping
    return SessionRecord(
        id=m["id"],
        owner=m["owner"],
        title=m["title"],
        agent=m["agent"],
        metadata=dict(m["metadata"]),
        policy=m["policy"],
        version=m["version"],
        epoch=m["epoch"],
        head_seq=m["head_seq"],
        status=m["status"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def run_from_row(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        session_id=m["session_id"],
        message_id=m["message_id"],
        command_id=m["command_id"],
        prompt=m["prompt"],
        status=m["status"],
        attempt=m["attempt"],
        queue_seq=m["queue_seq"],
        error=m["error"],
        usage=m["usage"],
        checkpoint=m["checkpoint"],
        lease_owner=m["lease_owner"],
        lease_expires_ms=m["lease_expires_ms"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


INTERRUPT_FIELDS = frozenset({"status", "answer", "note", "answered_by", "answered_at"})


def interrupt_from_row(row: Row[Any]) -> InterruptRecord:
    m = row._mapping
    return InterruptRecord(**{name: m[name] for name in interrupts.c.keys()})  # noqa: SIM118


def run_events_stmt(session_id: str, run_id: str, kinds: frozenset[str]) -> sa.Select[Any]:
    return (
        sa.select(events)
        .where(
            events.c.session_id == session_id,
            events.c.run_id == run_id,
            events.c.kind.in_(sorted(kinds)),
        )
        .order_by(events.c.seq)
    )


def run_interrupts_stmt(run_id: str, status: str | None) -> sa.Select[Any]:
    stmt = sa.select(interrupts).where(interrupts.c.run_id == run_id)
    if status is not None:
        stmt = stmt.where(interrupts.c.status == status)
    return stmt.order_by(interrupts.c.created_at, interrupts.c.id)


def event_from_row(row: Row[Any], epoch: str) -> EventRecord:
    m = row._mapping
    return EventRecord(
        session_id=m["session_id"],
        seq=m["seq"],
        epoch=epoch,
        ts=m["ts"],
        run_id=m["run_id"],
        kind=m["kind"],
        data=dict(m["data"]),
    )


def _checked(fields: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    return fields


class SqlTx:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.appended: list[EventRecord] = []
        self._for_update = conn.dialect.name == "postgresql"

    async def _locked(self, table: sa.Table, key: str) -> Row[Any] | None:
        """The row of ``table`` with id ``key``, locked until commit (Postgres ``FOR UPDATE``;
        SQLite's writer already holds the database write lock)."""
        stmt = sa.select(table).where(table.c.id == key)
        if self._for_update:
            stmt = stmt.with_for_update()
        return (await self.conn.execute(stmt)).first()

    async def lock_session(self, session_id: str) -> SessionRecord | None:
        row = await self._locked(sessions, session_id)
        return session_from_row(row) if row else None

    async def insert_session(self, session: SessionRecord) -> None:
        values = {name: getattr(session, name) for name in sessions.c.keys()}  # noqa: SIM118 (column names)
        await self.conn.execute(sa.insert(sessions).values(**values))

    async def update_session(
        self, session_id: str, expected_version: int | None, **fields: Any
    ) -> SessionRecord:
        values = _checked(fields, SESSION_FIELDS)
        stmt = sa.update(sessions).where(sessions.c.id == session_id)
        if expected_version is not None:
            stmt = stmt.where(sessions.c.version == expected_version)
        stmt = stmt.values(**values, version=sessions.c.version + 1, updated_at=utcnow())
        row = (await self.conn.execute(stmt.returning(*sessions.c))).first()
        if row is not None:
            return session_from_row(row)
        current = await self.lock_session(session_id)
        if current is None:
            raise NotFound(session_id)
        raise VersionConflict(current.version)

    async def set_session_status(self, session_id: str, status: str) -> None:
        """Derived run state; unlike user edits it does not bump ``version``."""
        stmt = sa.update(sessions).where(sessions.c.id == session_id).values(status=status)
        await self.conn.execute(stmt)

    async def delete_session(self, session_id: str) -> bool:
        return bool(await _delete_sessions(self.conn, [session_id]))

    async def append(self, session_id: str, new: Sequence[NewEvent]) -> list[EventRecord]:
        if not new:
            return []
        now = utcnow()
        bump = (
            sa.update(sessions)
            .where(sessions.c.id == session_id)
            .values(head_seq=sessions.c.head_seq + len(new), updated_at=now)
            .returning(sessions.c.head_seq, sessions.c.epoch)
        )
        row = (await self.conn.execute(bump)).first()
        if row is None:
            raise NotFound(session_id)
        head, epoch = row
        first = head - len(new) + 1
        records = [
            EventRecord(session_id, first + i, epoch, now, e.run_id, e.kind, e.data)
            for i, e in enumerate(new)
        ]
        await self.conn.execute(
            sa.insert(events),
            [
                {
                    "session_id": session_id,
                    "seq": r.seq,
                    "ts": r.ts,
                    "run_id": r.run_id,
                    "kind": r.kind,
                    "data": r.data,
                }
                for r in records
            ],
        )
        self.appended.extend(records)
        return records

    async def get_command(self, session_id: str, command_id: str) -> CommandRecord | None:
        stmt = sa.select(commands.c.kind, commands.c.result).where(
            commands.c.session_id == session_id, commands.c.command_id == command_id
        )
        row = (await self.conn.execute(stmt)).first()
        return CommandRecord(session_id, command_id, row.kind, dict(row.result)) if row else None

    async def insert_command(self, command: CommandRecord) -> None:
        await self.conn.execute(
            sa.insert(commands).values(
                session_id=command.session_id,
                command_id=command.command_id,
                kind=command.kind,
                result=command.result,
                created_at=utcnow(),
            )
        )

    async def insert_run(self, run: RunRecord) -> None:
        values = {name: getattr(run, name) for name in runs.c.keys()}  # noqa: SIM118 (column names)
        await self.conn.execute(sa.insert(runs).values(**values))

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = (await self.conn.execute(sa.select(runs).where(runs.c.id == run_id))).first()
        return run_from_row(row) if row else None

    async def lock_run(self, run_id: str) -> RunRecord | None:
        row = await self._locked(runs, run_id)
        return run_from_row(row) if row else None

    async def count_active_runs(self, owner: str) -> int:
        """Runs of ``owner`` that are queued, running or waiting, across all sessions."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(runs.join(sessions, runs.c.session_id == sessions.c.id))
            .where(sessions.c.owner == owner, runs.c.status.in_(sorted(RUN_OPEN)))
        )
        return int((await self.conn.execute(stmt)).scalar_one())

    async def update_run(
        self, run_id: str, expect_status: frozenset[str] | None = None, **fields: Any
    ) -> RunRecord | None:
        """Compare-and-set: ``None`` when the run is missing or not in ``expect_status``."""
        stmt = sa.update(runs).where(runs.c.id == run_id)
        if expect_status is not None:
            stmt = stmt.where(runs.c.status.in_(sorted(expect_status)))
        stmt = stmt.values(**_checked(fields, RUN_FIELDS), updated_at=utcnow())
        row = (await self.conn.execute(stmt.returning(*runs.c))).first()
        return run_from_row(row) if row else None

    async def extend_lease(
        self, run_id: str, owner: str, until_ms: int, checkpoint: str | None = None
    ) -> str | None:
        values: dict[str, Any] = {"lease_expires_ms": until_ms, "updated_at": utcnow()}
        if checkpoint is not None:
            values["checkpoint"] = checkpoint
        stmt = (
            sa.update(runs)
            .where(runs.c.id == run_id, runs.c.status == "running", runs.c.lease_owner == owner)
            .values(**values)
            .returning(runs.c.session_id)
        )
        session_id: str | None = (await self.conn.execute(stmt)).scalar_one_or_none()
        return session_id

    async def runs_by_status(self, session_id: str, statuses: frozenset[str]) -> list[RunRecord]:
        stmt = (
            sa.select(runs)
            .where(runs.c.session_id == session_id, runs.c.status.in_(sorted(statuses)))
            .order_by(runs.c.queue_seq)
        )
        return [run_from_row(row) for row in await self.conn.execute(stmt)]

    async def insert_interrupt(self, interrupt: InterruptRecord) -> None:
        values = {name: getattr(interrupt, name) for name in interrupts.c.keys()}  # noqa: SIM118
        await self.conn.execute(sa.insert(interrupts).values(**values))

    async def lock_interrupt(self, interrupt_id: str) -> InterruptRecord | None:
        row = await self._locked(interrupts, interrupt_id)
        return interrupt_from_row(row) if row else None

    async def update_interrupt(
        self, interrupt_id: str, expect_status: str, **fields: Any
    ) -> InterruptRecord | None:
        """Compare-and-set on ``status``: the first answer wins, later ones get ``None``."""
        stmt = (
            sa.update(interrupts)
            .where(interrupts.c.id == interrupt_id, interrupts.c.status == expect_status)
            .values(**_checked(fields, INTERRUPT_FIELDS))
            .returning(*interrupts.c)
        )
        row = (await self.conn.execute(stmt)).first()
        return interrupt_from_row(row) if row else None

    async def run_interrupts(self, run_id: str, status: str | None = None) -> list[InterruptRecord]:
        rows = await self.conn.execute(run_interrupts_stmt(run_id, status))
        return [interrupt_from_row(row) for row in rows]

    async def run_events(
        self, session_id: str, run_id: str, kinds: frozenset[str]
    ) -> list[EventRecord]:
        session = await self.lock_session(session_id)
        epoch = session.epoch if session else ""
        rows = await self.conn.execute(run_events_stmt(session_id, run_id, kinds))
        return [event_from_row(row, epoch) for row in rows]

    async def put_search_context(self, record: SearchContextRecord, keep: int) -> None:
        await search_context.put(self.conn, record, keep)

    async def invalidate_search_context(self, path: str) -> int:
        return await search_context.invalidate(self.conn, path)

    async def charge_run(
        self, owner: str, day: str, max_runs: int, max_tokens: int
    ) -> UsageRecord | None:
        return await usage_sql.charge_run(self.conn, owner, day, max_runs, max_tokens)

    async def add_usage(
        self, owner: str, day: str, input_tokens: int, output_tokens: int, requests: int
    ) -> None:
        await usage_sql.add_usage(
            self.conn,
            owner,
            day,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            requests=requests,
        )

    async def delete_idle_sessions(self, idle_before: datetime, limit: int) -> list[str]:
        stmt = (
            sa.select(sessions.c.id)
            .where(sessions.c.updated_at < idle_before, sessions.c.status.not_in(BUSY_STATUSES))
            .order_by(sessions.c.updated_at)
            .limit(limit)
        )
        if self.conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list((await self.conn.execute(stmt)).scalars())
        await _delete_sessions(self.conn, ids)
        return ids


async def _delete_sessions(conn: AsyncConnection, ids: list[str]) -> int:
    """Delete sessions and every row that belongs to them; returns how many sessions."""
    if not ids:
        return 0
    for table in SESSION_CHILDREN:
        await conn.execute(sa.delete(table).where(table.c.session_id.in_(ids)))
    result = await conn.execute(sa.delete(sessions).where(sessions.c.id.in_(ids)))
    return int(result.rowcount)
