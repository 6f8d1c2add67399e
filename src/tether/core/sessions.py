"""Sessions and commands: the operations the socket and REST share.

Ownership is checked here, once: a session that is not the caller's is ``Forbidden``
(the socket closes 4403; REST answers 404 so ids cannot be probed).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tether.agents.registry import AgentRegistry
from tether.core import interrupts as hitl
from tether.core import transitions as tr
from tether.core.hub import Hub
from tether.core.quotas import DailyQuota
from tether.core.runs import RunManager
from tether.limits.guard import Scope, UserLimits
from tether.metrics import Metrics
from tether.protocol.codec import check_command_id, check_metadata, check_text
from tether.protocol.errors import ErrorCode, ProtocolError
from tether.protocol.events import EventKind, SessionData
from tether.protocol.frames import Policy, SnapshotFrame
from tether.store.contract import (
    RUN_OPEN,
    EventRecord,
    NewEvent,
    NotFound,
    SessionRecord,
    SnapshotData,
    Store,
    StoreTx,
    new_id,
    utcnow,
)
from tether.workspace.paths import PathRefused, WorkspaceMissing, open_workspace

DEFAULT_TITLE = "New session"


class Forbidden(Exception):
    """The session exists but belongs to someone else."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_metadata_bytes: int
    max_title_chars: int
    max_open_runs_per_user: int
    default_agent: str
    workspace_root: str | None = None
    max_metadata_keys: int = 64
    quota: DailyQuota = field(default_factory=DailyQuota)
    max_command_id_chars: int = 64
    max_message_chars: int = 100_000
    max_json_depth: int = 32


SNAPSHOT_TOOLS = 100


def _fold_tool(tools: dict[str, dict[str, Any]], event: EventRecord, after: str | None) -> None:
    call_id = str(event.data.get("call_id"))
    call = tools.setdefault(
        call_id,
        {
            "call_id": call_id,
            "run_id": event.run_id,
            "tool": event.data.get("tool"),
            "args": event.data.get("args"),
            "status": "running",
            "after_message_id": after,
        },
    )
    if event.kind == EventKind.TOOL_FINISHED:
        call["status"] = "ok" if event.data.get("ok") else "error"
        call["output"] = event.data.get("output")
        call["error"] = event.data.get("error")


def fold_snapshot(data: SnapshotData) -> SnapshotFrame:
    """The view a late joiner needs: messages (streaming ones partial), the latest tool
    calls (each placed after the message it followed in the log), runs, interrupts."""
    messages: dict[str, dict[str, Any]] = {}
    tools: dict[str, dict[str, Any]] = {}
    last: str | None = None
    for event in data.message_events:
        if event.kind in (EventKind.TOOL_STARTED, EventKind.TOOL_FINISHED):
            _fold_tool(tools, event, last)
            continue
        message_id = str(event.data.get("message_id"))
        last = message_id
        if event.kind == EventKind.MESSAGE_USER:
            messages[message_id] = {
                "message_id": message_id,
                "role": "user",
                "content": event.data["content"],
                "run_id": event.run_id,
                "command_id": event.data.get("command_id"),
            }
        elif event.kind == EventKind.TEXT_DELTA:
            entry = messages.setdefault(
                message_id,
                {
                    "message_id": message_id,
                    "role": "assistant",
                    "content": "",
                    "run_id": event.run_id,
                    "partial": True,
                },
            )
            entry["content"] += event.data["delta"]
        elif event.kind == EventKind.MESSAGE_ASSISTANT:
            messages[message_id] = {
                "message_id": message_id,
                "role": "assistant",
                "content": event.data["content"],
                "run_id": event.run_id,
            }
    return SnapshotFrame(
        as_of_seq=data.session.head_seq,
        session=data.session.to_json(),
        messages=list(messages.values()),
        runs=[run.to_json() for run in data.runs],
        interrupts=[rec.to_json() for rec in data.interrupts],
        tools=list(tools.values())[-SNAPSHOT_TOOLS:],
        history_before=data.history_before,
    )


def _check_rebind(current: SessionRecord, metadata: dict[str, Any] | None) -> None:
    """A session's workspace stays put while a run is open: an approval shows a diff of
    a file in the workspace the run started in, and must be applied there."""
    if metadata is None or current.status == "idle":
        return
    if metadata.get("workspace") != current.metadata.get("workspace"):
        raise ProtocolError(
            ErrorCode.CONFLICT,
            f"metadata.workspace cannot change while the session is {current.status}",
        )


def _session_data(session: SessionRecord) -> dict[str, Any]:
    return SessionData(
        title=session.title,
        agent=session.agent,
        metadata=session.metadata,
        policy=session.policy,
    ).dump()


class Sessions:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        runs: RunManager,
        registry: AgentRegistry,
        limits: SessionLimits,
        metrics: Metrics,
        guard: UserLimits,
    ) -> None:
        self._store = store
        self._guard = guard
        self._hub = hub
        self._runs = runs
        self._registry = registry
        self._limits = limits
        self._metrics = metrics
        self._inflight: set[asyncio.Task[tr.CommandResult]] = set()

    def _check(self, title: str | None, metadata: dict[str, Any] | None) -> None:
        check_text(title)
        if title is not None and len(title) > self._limits.max_title_chars:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"title longer than {self._limits.max_title_chars} chars"
            )
        if metadata is not None:
            limits = self._limits
            check_metadata(
                metadata, limits.max_metadata_bytes, limits.max_metadata_keys, limits.max_json_depth
            )
            if "workspace" in metadata:
                self._check_workspace(metadata["workspace"])

    def _check_workspace(self, name: object) -> None:
        """``metadata.workspace`` must name a directory under the workspace root."""
        root = self._limits.workspace_root
        try:
            if root is None:
                raise WorkspaceMissing("this server has no workspace root")
            open_workspace(root, name)  # type: ignore[arg-type]
        except (PathRefused, WorkspaceMissing) as exc:
            details = [{"loc": ["metadata", "workspace"], "msg": str(exc), "type": "value_error"}]
            raise ProtocolError(ErrorCode.INVALID, str(exc), details=details) from None

    async def create(
        self,
        owner: str,
        *,
        title: str | None = None,
        agent: str | None = None,
        metadata: dict[str, Any] | None = None,
        policy: Policy | None = None,
    ) -> SessionRecord:
        self._check(title, metadata)
        agent = agent or self._limits.default_agent
        if agent not in self._registry:
            raise ProtocolError(
                ErrorCode.INVALID, f"unknown agent {agent!r}; known: {self._registry.names()}"
            )
        now = utcnow()
        session = SessionRecord(
            id=new_id("s"),
            owner=owner,
            title=title or DEFAULT_TITLE,
            agent=agent,
            metadata=metadata or {},
            policy=policy or "enqueue",
            version=1,
            epoch=secrets.token_hex(8),
            head_seq=0,
            status="idle",
            created_at=now,
            updated_at=now,
        )

        async def op(tx: StoreTx) -> SessionRecord:
            await tx.insert_session(session)
            event = NewEvent(EventKind.SESSION_CREATED, _session_data(session))
            [logged] = await tx.append(session.id, [event])
            return replace(session, head_seq=logged.seq, updated_at=logged.ts)

        result: SessionRecord = await self._store.write(op)
        return result

    async def owned(self, user: str, session_id: str) -> SessionRecord:
        session = await self._store.get_session(session_id)
        if session is None:
            raise NotFound(session_id)
        if session.owner != user:
            raise Forbidden(session_id)
        return session

    async def update(
        self, user: str, session_id: str, expected_version: int | None, changes: dict[str, Any]
    ) -> SessionRecord:
        self._check(changes.get("title"), changes.get("metadata"))

        async def op(tx: StoreTx) -> SessionRecord:
            current = await tx.lock_session(session_id)
            if current is None or current.owner != user:
                raise NotFound(session_id)
            _check_rebind(current, changes.get("metadata"))
            updated = await tx.update_session(session_id, expected_version, **changes)
            event = NewEvent(EventKind.SESSION_UPDATED, _session_data(updated))
            [logged] = await tx.append(session_id, [event])
            return replace(updated, head_seq=logged.seq, updated_at=logged.ts)

        result: SessionRecord = await self._store.write(op)
        return result

    async def delete(self, user: str, session_id: str, close_frame: Any) -> None:
        await self.owned(user, session_id)
        open_runs = [
            r.id for r in await self._store.list_runs(session_id, 1_000) if r.status in RUN_OPEN
        ]
        await self._runs.stop_local(open_runs)
        await self._store.write(lambda tx: tx.delete_session(session_id))
        self._hub.close_session(session_id, close_frame)

    async def snapshot(self, session_id: str) -> SnapshotFrame:
        data = await self._store.read_snapshot(session_id)
        if data is None:
            raise NotFound(session_id)
        return fold_snapshot(data)

    async def message(
        self, user: str, session_id: str, command_id: str, content: str, policy: Policy | None
    ) -> tr.CommandResult:
        """Admit a user message (rate limits: messages and run starts, per user; quotas:
        open runs and the daily caps, checked in the admitting transaction)."""
        check_text(content)
        if len(content) > self._limits.max_message_chars:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"message longer than {self._limits.max_message_chars} characters",
                command_id,
            )
        request = tr.MessageRequest(
            session_id,
            user,
            command_id,
            content,
            policy,
            self._limits.max_open_runs_per_user,
            self._limits.quota,
        )
        lease = self._runs.lease()
        return await self._command(
            request.session_id,
            command_id,
            lambda tx: tr.admit_message(tx, request, lease),
            take=(user, (Scope.MESSAGES, Scope.RUN_STARTS)),
        )

    async def cancel(
        self, user: str, session_id: str, command_id: str, run_id: str | None
    ) -> tr.CommandResult:
        lease = self._runs.lease()
        return await self._command(
            session_id,
            command_id,
            lambda tx: tr.cancel_command(tx, session_id, command_id, run_id, user, lease),
        )

    async def respond(
        self,
        user: str,
        session_id: str,
        command_id: str,
        interrupt_id: str,
        approved: bool | None,
        answer: str | None,
        note: str | None,
    ) -> tr.CommandResult:
        check_text([answer, note])
        request = hitl.RespondRequest(
            session_id, user, command_id, interrupt_id, approved, answer, note
        )
        lease = self._runs.lease()
        result = await self._command(
            session_id, command_id, lambda tx: hitl.resolve_interrupt(tx, request, lease)
        )
        if not result.duplicate:
            await self._observe_answer(interrupt_id, str(result.result.get("outcome")))
        return result

    async def _observe_answer(self, interrupt_id: str, outcome: str) -> None:
        self._metrics.interrupts_resolved.labels(outcome=outcome).inc()
        rec = await self._store.get_interrupt(interrupt_id)
        if rec is not None and rec.answered_at is not None:
            waited = (rec.answered_at - rec.created_at).total_seconds()
            self._metrics.interrupt_wait_seconds.observe(max(0.0, waited))

    async def retry(
        self, user: str, session_id: str, command_id: str, run_id: str | None
    ) -> tr.CommandResult:
        request = tr.RetryRequest(
            session_id,
            user,
            command_id,
            run_id,
            self._limits.quota,
            self._limits.max_open_runs_per_user,
        )
        lease = self._runs.lease()
        return await self._command(
            session_id,
            command_id,
            lambda tx: tr.retry_command(tx, request, lease),
            take=(user, (Scope.RUN_STARTS,)),
        )

    async def _command(
        self,
        session_id: str,
        command_id: str,
        unit: Callable[[StoreTx], Awaitable[tr.CommandResult]],
        take: tuple[str, tuple[Scope, ...]] | None = None,
    ) -> tr.CommandResult:
        """One client command. A repeated id gets its stored result before any rate-limit
        token is spent (the unit re-checks inside its transaction, against races). The
        commit and what must follow it (starting or stopping runs) run as one task that a
        caller cancelled mid-way (a dropped socket) cannot cut in half: a committed run is
        always launched. The id's limits are checked here, once for the socket and REST."""
        check_command_id(command_id, self._limits.max_command_id_chars)
        known = await self._store.get_command(session_id, command_id)
        if known is not None:
            return tr.CommandResult(True, known.result)
        if take is not None:
            await self._guard.take(take[0], *take[1], command_id=command_id)

        async def commit_then_follow() -> tr.CommandResult:
            result: tr.CommandResult = await self._store.write(unit)
            await self._after(result)
            return result

        task = asyncio.create_task(commit_then_follow(), name=f"command-{command_id[:64]}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def drain(self, timeout_s: float) -> None:
        """Let commands already committing finish (at shutdown, before runs stop)."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)

    async def _after(self, result: tr.CommandResult) -> None:
        if result.duplicate:
            return
        await self._runs.stop_local(result.stop)
        self._runs.launch(result.start)
