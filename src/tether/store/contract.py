"""The store contract: records, the unit-of-work transaction, and the store itself.

Every state change and its events are written by one ``Store.write(fn)`` call: ``fn`` runs
inside one transaction (a savepoint of a group commit), so either all of it lands or none.
Every backend passes ``tests/contract``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

RUN_ACTIVE = frozenset({"running", "waiting"})
RUN_OPEN = frozenset({"queued", "running", "waiting"})
RUN_TERMINAL = frozenset({"completed", "failed", "cancelled"})


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str = "") -> str:
    """A 128-bit id whose first 48 bits are the time in ms, so ids sort by creation."""
    return f"{prefix}{now_ms():012x}{os.urandom(10).hex()}"


class StoreError(Exception):
    """Base of store failures that callers handle."""


class NotFound(StoreError):
    pass


class VersionConflict(StoreError):
    def __init__(self, current: int) -> None:
        super().__init__(f"stale version; current is {current}")
        self.current = current


class StoreUnavailable(StoreError):
    """The store did not answer within its deadline, or its write queue is full."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    owner: str
    title: str
    agent: str
    metadata: dict[str, Any]
    policy: str
    version: int
    epoch: str
    head_seq: int
    status: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "agent": self.agent,
            "metadata": self.metadata,
            "policy": self.policy,
            "owner": self.owner,
            "version": self.version,
            "epoch": self.epoch,
            "head_seq": self.head_seq,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: str
    data: dict[str, Any]
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    session_id: str
    seq: int
    epoch: str
    ts: datetime
    run_id: str | None
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    session_id: str
    message_id: str
    command_id: str
    prompt: str
    status: str
    attempt: int = 1
    queue_seq: int = 0
    error: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    checkpoint: str | None = None
    lease_owner: str | None = None
    lease_expires_ms: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def evolve(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "message_id": self.message_id,
            "status": self.status,
            "attempt": self.attempt,
            "error": self.error,
            "usage": self.usage,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


INTERRUPT_PENDING = "pending"


@dataclass(frozen=True, slots=True)
class InterruptRecord:
    """A durable request to a person, bound to one tool call (``args_hash``) or a question.

    ``reason`` says why it exists: ``approval`` (the tool needs one), ``question`` (the
    agent asks), or ``rerun`` (the tool started but never finished before a crash).
    """

    id: str
    session_id: str
    run_id: str
    kind: str
    prompt: str
    on_timeout: str
    reason: str
    status: str = INTERRUPT_PENDING
    call_id: str | None = None
    tool: str | None = None
    args: dict[str, Any] | None = None
    args_hash: str | None = None
    choices: list[str] | None = None
    expires_at_ms: int | None = None
    answer: str | None = None
    note: str | None = None
    answered_by: str | None = None
    answered_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        expires = (
            datetime.fromtimestamp(self.expires_at_ms / 1000, UTC).isoformat()
            if self.expires_at_ms is not None
            else None
        )
        return {
            "interrupt_id": self.id,
            "run_id": self.run_id,
            "kind": self.kind,
            "call_id": self.call_id,
            "tool": self.tool,
            "args": self.args,
            "prompt": self.prompt,
            "choices": self.choices,
            "expires_at": expires,
            "on_timeout": self.on_timeout,
            "status": self.status,
            "answer": self.answer,
            "note": self.note,
            "by": self.answered_by,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class CommandRecord:
    session_id: str
    command_id: str
    kind: str
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchContextRecord:
    """One remembered search of a session: the query, the paths its results touch
    (workspace-qualified, for invalidation), and the results as the agent saw them."""

    session_id: str
    query_key: str
    query: str
    paths: list[str]
    results: dict[str, Any]
    created_ms: int


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One user's consumption on one UTC day (``YYYY-MM-DD``)."""

    owner: str
    day: str
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "runs": self.runs,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.requests,
        }


def utc_day(at: datetime | None = None) -> str:
    return (at or utcnow()).astimezone(UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class SnapshotData:
    """Everything a snapshot needs, read in one consistent read transaction."""

    session: SessionRecord
    message_events: list[EventRecord]
    runs: list[RunRecord]
    interrupts: list[InterruptRecord] = field(default_factory=list)
    history_before: int | None = None  # older messages were left out (seq of the oldest kept)


class StoreTx(Protocol):
    """What one unit of work may do; every call joins the surrounding transaction."""

    async def lock_session(self, session_id: str) -> SessionRecord | None: ...
    async def insert_session(self, session: SessionRecord) -> None: ...
    async def update_session(
        self, session_id: str, expected_version: int | None, **fields: Any
    ) -> SessionRecord: ...
    async def set_session_status(self, session_id: str, status: str) -> None: ...
    async def delete_session(self, session_id: str) -> bool: ...
    async def append(self, session_id: str, events: Sequence[NewEvent]) -> list[EventRecord]: ...
    async def get_command(self, session_id: str, command_id: str) -> CommandRecord | None: ...
    async def insert_command(self, command: CommandRecord) -> None: ...
    async def insert_run(self, run: RunRecord) -> None: ...
    async def get_run(self, run_id: str) -> RunRecord | None: ...
    async def lock_run(self, run_id: str) -> RunRecord | None: ...
    async def count_active_runs(self, owner: str) -> int: ...
    async def update_run(
        self, run_id: str, expect_status: frozenset[str] | None = None, **fields: Any
    ) -> RunRecord | None: ...
    async def runs_by_status(
        self, session_id: str, statuses: frozenset[str]
    ) -> list[RunRecord]: ...
    async def extend_lease(
        self, run_id: str, owner: str, until_ms: int, checkpoint: str | None = None
    ) -> str | None:
        """One compare-and-set: if the run is ``running`` under ``owner``'s lease, extend
        it (and store ``checkpoint``) and return its session id; else ``None``. Reads no
        other column, so the (large) checkpoint never travels back."""
        ...

    async def insert_interrupt(self, interrupt: InterruptRecord) -> None: ...
    async def lock_interrupt(self, interrupt_id: str) -> InterruptRecord | None: ...
    async def update_interrupt(
        self, interrupt_id: str, expect_status: str, **fields: Any
    ) -> InterruptRecord | None: ...
    async def run_interrupts(
        self, run_id: str, status: str | None = None
    ) -> list[InterruptRecord]: ...
    async def run_events(
        self, session_id: str, run_id: str, kinds: frozenset[str]
    ) -> list[EventRecord]: ...
    async def put_search_context(self, record: SearchContextRecord, keep: int) -> None:
        """Store (or replace) ``record`` and keep only the session's ``keep`` newest."""
        ...

    async def invalidate_search_context(self, path: str) -> int:
        """Forget every session's entries whose ``paths`` include ``path``; returns how many."""
        ...

    async def charge_run(
        self, owner: str, day: str, max_runs: int, max_tokens: int
    ) -> UsageRecord | None:
        """Count one more run for ``owner`` on ``day`` unless that would pass ``max_runs``
        or the day's tokens already reached ``max_tokens`` (0 = no cap). Atomic against
        concurrent charges (row lock / write lock): exactly ``max_runs`` succeed. ``None``
        when refused."""
        ...

    async def add_usage(
        self, owner: str, day: str, input_tokens: int, output_tokens: int, requests: int
    ) -> None: ...
    async def delete_idle_sessions(self, idle_before: datetime, limit: int) -> list[str]:
        """Delete up to ``limit`` sessions not updated since ``idle_before`` and with no
        queued or running run, with all their rows; returns their ids."""
        ...


WriteFn = Callable[[StoreTx], Awaitable[T]]
CommitHook = Callable[[Sequence[EventRecord]], None]


class Store(Protocol):
    """A durable home for sessions, their event logs, runs and command ids."""

    async def start(self, on_commit: CommitHook) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def write(self, fn: WriteFn[T]) -> T: ...
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def list_sessions(
        self, owner: str, limit: int, before_id: str | None = None
    ) -> list[SessionRecord]: ...
    async def read_events(
        self, session_id: str, after_seq: int, limit: int
    ) -> list[EventRecord]: ...
    async def read_snapshot(self, session_id: str) -> SnapshotData | None: ...
    async def get_run(self, run_id: str) -> RunRecord | None: ...
    async def list_runs(self, session_id: str, limit: int) -> list[RunRecord]: ...
    async def get_command(self, session_id: str, command_id: str) -> CommandRecord | None: ...
    async def expired_runs(self, now_ms: int, limit: int) -> list[RunRecord]: ...
    async def latest_checkpoint(self, session_id: str) -> str | None: ...
    async def list_interrupts(
        self, session_id: str, status: str | None, limit: int
    ) -> list[InterruptRecord]: ...
    async def get_interrupt(self, interrupt_id: str) -> InterruptRecord | None: ...
    async def pending_interrupt_counts(self, session_ids: Sequence[str]) -> dict[str, int]:
        """Pending interrupts per session among ``session_ids`` (absent: none)."""
        ...

    async def run_interrupts(self, run_id: str) -> list[InterruptRecord]: ...
    async def due_interrupts(self, now_ms: int, limit: int) -> list[InterruptRecord]: ...
    async def run_events(
        self, session_id: str, run_id: str, kinds: frozenset[str]
    ) -> list[EventRecord]: ...
    async def get_search_context(
        self, session_id: str, query_key: str
    ) -> SearchContextRecord | None: ...
    async def list_search_context(self, session_id: str, limit: int) -> list[SearchContextRecord]:
        """The session's remembered searches, newest first."""
        ...

    async def get_usage(self, owner: str, day: str) -> UsageRecord:
        """``owner``'s usage on ``day`` (zeros when nothing was recorded)."""
        ...

    async def count_active_runs(self, owner: str) -> int: ...
