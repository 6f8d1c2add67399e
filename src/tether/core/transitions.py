"""Run and session state changes, each one atomic unit of work on a ``StoreTx``.

Every function here writes its state change and its events in the caller's transaction;
none does I/O of its own. A run's executor proves it still owns the run (status
``running`` and its lease) on every write, so a cancel from any instance wins cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.core.quotas import DailyQuota, charge_run, record_usage
from tether.protocol.errors import ErrorCode, ProtocolError
from tether.protocol.events import (
    ErrorInfo,
    EventKind,
    InterruptResolvedData,
    MessageUserData,
    RunCancelledData,
    RunFailedData,
    RunInterruptedData,
    RunStateData,
)
from tether.store.contract import (
    INTERRUPT_PENDING,
    RUN_ACTIVE,
    RUN_OPEN,
    RUN_TERMINAL,
    CommandRecord,
    NewEvent,
    NotFound,
    RunRecord,
    SessionRecord,
    StoreTx,
    new_id,
    utcnow,
)

QUEUED = frozenset({"queued"})
RUNNING = frozenset({"running"})


class RunLost(Exception):
    """This instance no longer owns the run (cancelled elsewhere, or its lease was taken)."""


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    until_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ends: its status, the final event, and what to store on the run."""

    status: str
    kind: EventKind
    data: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResult:
    duplicate: bool
    result: dict[str, Any]
    start: list[RunRecord] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)


def failed(code: str, message: str, *, retryable: bool) -> Outcome:
    data = RunFailedData(error=ErrorInfo(code=code, message=message), retryable=retryable)
    return Outcome("failed", EventKind.RUN_FAILED, data.dump(), {"error": data.error.dump()})


async def refresh_status(tx: StoreTx, session_id: str) -> None:
    open_runs = {run.status for run in await tx.runs_by_status(session_id, RUN_OPEN)}
    status = next((s for s in ("running", "waiting", "queued") if s in open_runs), "idle")
    await tx.set_session_status(session_id, status)


async def _replayed(tx: StoreTx, session_id: str, command_id: str) -> CommandResult | None:
    existing = await tx.get_command(session_id, command_id)
    return CommandResult(True, existing.result) if existing else None


async def _begin_command(
    tx: StoreTx, session_id: str, command_id: str
) -> tuple[SessionRecord, CommandResult | None]:
    """Lock the session row, so its commands apply one at a time on every store and
    instance; with it, the stored result of a repeated id (``None`` for a new one)."""
    session = await tx.lock_session(session_id)
    if session is None:
        raise NotFound(session_id)
    return session, await _replayed(tx, session_id, command_id)


async def _check_open_runs(tx: StoreTx, owner: str, max_open_runs: int, command_id: str) -> None:
    if await tx.count_active_runs(owner) >= max_open_runs:
        raise ProtocolError(
            ErrorCode.QUOTA_EXCEEDED, f"at most {max_open_runs} open runs per user", command_id
        )


async def cancel_interrupts(tx: StoreTx, run_id: str, by: str) -> None:
    """Every pending interrupt of the run becomes ``cancelled``, with its event."""
    for rec in await tx.run_interrupts(run_id, INTERRUPT_PENDING):
        done = await tx.update_interrupt(
            rec.id, INTERRUPT_PENDING, status="cancelled", answered_by=by, answered_at=utcnow()
        )
        if done is not None:
            data = InterruptResolvedData(interrupt_id=rec.id, outcome="cancelled", by=by).dump()
            await tx.append(rec.session_id, [NewEvent(EventKind.INTERRUPT_RESOLVED, data, run_id)])


async def _cancel(tx: StoreTx, run: RunRecord, by: str) -> bool:
    changed = await tx.update_run(
        run.id, RUN_OPEN, status="cancelled", lease_owner=None, lease_expires_ms=None
    )
    if changed is None:
        return False
    await cancel_interrupts(tx, run.id, by)
    data = RunCancelledData(by=by).dump()
    await tx.append(run.session_id, [NewEvent(EventKind.RUN_CANCELLED, data, run.id)])
    return True


async def promote_next(tx: StoreTx, session_id: str, lease: Lease) -> RunRecord | None:
    """Start the oldest queued run if nothing else is active; it runs under ``lease``."""
    if await tx.runs_by_status(session_id, RUN_ACTIVE):
        return None
    for queued in await tx.runs_by_status(session_id, QUEUED):
        run = await tx.update_run(
            queued.id,
            QUEUED,
            status="running",
            lease_owner=lease.owner,
            lease_expires_ms=lease.until_ms,
        )
        if run is not None:
            data = RunStateData(run_id=run.id, message_id=run.message_id, attempt=run.attempt)
            await tx.append(session_id, [NewEvent(EventKind.RUN_STARTED, data.dump(), run.id)])
            return run
    return None


@dataclass(frozen=True, slots=True)
class MessageRequest:
    session_id: str
    owner: str
    command_id: str
    content: str
    policy: str | None
    max_open_runs: int
    quota: DailyQuota = field(default_factory=DailyQuota)


async def admit_message(tx: StoreTx, req: MessageRequest, lease: Lease) -> CommandResult:
    """Log the user message and start, queue, interrupt or reject by the busy policy."""
    session, replay = await _begin_command(tx, req.session_id, req.command_id)
    if replay is not None:
        return replay
    active = await tx.runs_by_status(req.session_id, RUN_ACTIVE)
    queued = await tx.runs_by_status(req.session_id, QUEUED)
    policy = req.policy or session.policy
    busy = bool(active or queued)
    if busy and policy == "reject":
        raise ProtocolError(ErrorCode.BUSY, "a run is active; policy is reject", req.command_id)
    stopped: list[str] = []
    if busy and policy == "interrupt":
        stopped = [run.id for run in active if await _cancel(tx, run, "interrupt")]
    await _check_open_runs(tx, req.owner, req.max_open_runs, req.command_id)
    await charge_run(tx, req.owner, req.command_id, req.quota)
    start_now = not busy or policy == "interrupt"
    run = await _insert_run(tx, req, start_now, position=len(queued) + 1, lease=lease)
    result = {"run_id": run.id, "message_id": run.message_id}
    await tx.insert_command(CommandRecord(req.session_id, req.command_id, "message", result))
    await refresh_status(tx, req.session_id)
    return CommandResult(False, result, [run] if start_now else [], stopped)


async def _insert_run(
    tx: StoreTx, req: MessageRequest, start_now: bool, position: int, lease: Lease
) -> RunRecord:
    run_id, message_id = new_id("r"), new_id("m")
    user = MessageUserData(message_id=message_id, content=req.content, command_id=req.command_id)
    [logged] = await tx.append(
        req.session_id, [NewEvent(EventKind.MESSAGE_USER, user.dump(), run_id)]
    )
    run = RunRecord(
        id=run_id,
        session_id=req.session_id,
        message_id=message_id,
        command_id=req.command_id,
        prompt=req.content,
        status="running" if start_now else "queued",
        queue_seq=logged.seq,
        lease_owner=lease.owner if start_now else None,
        lease_expires_ms=lease.until_ms if start_now else None,
    )
    await tx.insert_run(run)
    state = RunStateData(
        run_id=run_id, message_id=message_id, attempt=1, position=None if start_now else position
    )
    kind = EventKind.RUN_STARTED if start_now else EventKind.RUN_QUEUED
    await tx.append(req.session_id, [NewEvent(kind, state.dump(), run_id)])
    return run


async def cancel_command(
    tx: StoreTx, session_id: str, command_id: str, run_id: str | None, by: str, lease: Lease
) -> CommandResult:
    """Cancel the named run, else the active one, else the oldest queued one."""
    if (replay := (await _begin_command(tx, session_id, command_id))[1]) is not None:
        return replay
    target = await _cancel_target(tx, session_id, command_id, run_id)
    await _cancel(tx, target, by)
    started = await promote_next(tx, session_id, lease) if target.status in RUN_ACTIVE else None
    result = {"run_id": target.id}
    await tx.insert_command(CommandRecord(session_id, command_id, "cancel", result))
    await refresh_status(tx, session_id)
    return CommandResult(False, result, [started] if started else [], [target.id])


async def _cancel_target(
    tx: StoreTx, session_id: str, command_id: str, run_id: str | None
) -> RunRecord:
    if run_id is not None:
        run = await tx.lock_run(run_id)
        if run is None or run.session_id != session_id:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no run {run_id} in this session", command_id)
        if run.status in RUN_TERMINAL:
            raise ProtocolError(
                ErrorCode.CONFLICT, f"run {run_id} already {run.status}", command_id
            )
        return run
    candidates = await tx.runs_by_status(session_id, RUN_ACTIVE) or await tx.runs_by_status(
        session_id, QUEUED
    )
    if not candidates:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no active or queued run to cancel", command_id)
    return candidates[0]


async def owned(tx: StoreTx, run_id: str, owner: str) -> RunRecord:
    run = await tx.lock_run(run_id)
    if run is None or run.status != "running" or run.lease_owner != owner:
        raise RunLost(run_id)
    return run


async def append_output(
    tx: StoreTx, run_id: str, events: list[NewEvent], lease: Lease, checkpoint: str | None = None
) -> None:
    """Append a running run's output and renew its lease, if this instance still owns it.
    A tool's ``checkpoint`` is stored with its ``tool.started``, in the same transaction."""
    session_id = await tx.extend_lease(run_id, lease.owner, lease.until_ms, checkpoint)
    if session_id is None:
        raise RunLost(run_id)
    await tx.append(session_id, events)


async def renew_leases(tx: StoreTx, run_ids: list[str], lease: Lease) -> list[str]:
    """Extend the leases of runs this instance executes; returns the ones it lost."""
    return [
        run_id
        for run_id in run_ids
        if await tx.extend_lease(run_id, lease.owner, lease.until_ms) is None
    ]


async def finish_run(tx: StoreTx, run_id: str, outcome: Outcome, lease: Lease) -> RunRecord | None:
    """End an owned run with ``outcome`` and start the next queued one (returned)."""
    run = await owned(tx, run_id, lease.owner)
    await tx.update_run(
        run_id,
        RUNNING,
        status=outcome.status,
        lease_owner=None,
        lease_expires_ms=None,
        **outcome.fields,
    )
    await tx.append(run.session_id, [NewEvent(outcome.kind, outcome.data, run_id)])
    await record_usage(tx, run.session_id, outcome.fields.get("usage"))
    started = await promote_next(tx, run.session_id, lease)
    await refresh_status(tx, run.session_id)
    return started


async def recover_run(tx: StoreTx, run_id: str, now_ms: int, lease: Lease) -> RunRecord | None:
    """Fail a run whose executor died (lease expired): ``run.interrupted`` then
    ``run.failed {retryable: true}``; start the next queued run under ``lease``."""
    run = await tx.lock_run(run_id)
    expired = run is not None and (run.lease_expires_ms or 0) < now_ms
    if run is None or run.status != "running" or not expired:
        return None
    end = failed("interrupted", "the server executing this run stopped", retryable=True)
    await tx.update_run(
        run_id, RUNNING, status="failed", lease_owner=None, lease_expires_ms=None, **end.fields
    )
    reason = RunInterruptedData(reason="lease expired: the executing server stopped").dump()
    await tx.append(
        run.session_id,
        [NewEvent(EventKind.RUN_INTERRUPTED, reason, run_id), NewEvent(end.kind, end.data, run_id)],
    )
    started = await promote_next(tx, run.session_id, lease)
    await refresh_status(tx, run.session_id)
    return started


RETRYABLE = frozenset({"failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class RetryRequest:
    session_id: str
    owner: str
    command_id: str
    run_id: str | None
    quota: DailyQuota = field(default_factory=DailyQuota)
    max_open_runs: int = 8


async def retry_command(tx: StoreTx, req: RetryRequest, lease: Lease) -> CommandResult:
    """Run a failed, cancelled or interrupted run again as a new attempt (from its last
    checkpoint when it has one); a completed or open run is a ``conflict``. A retry
    counts as a run against the daily quota."""
    session_id, command_id = req.session_id, req.command_id
    if (replay := (await _begin_command(tx, session_id, command_id))[1]) is not None:
        return replay
    target = await _retry_target(tx, session_id, command_id, req.run_id)
    await _check_open_runs(tx, req.owner, req.max_open_runs, command_id)
    await charge_run(tx, req.owner, command_id, req.quota)
    busy = bool(await tx.runs_by_status(session_id, RUN_OPEN))
    status = "queued" if busy else "running"
    run = await tx.update_run(
        target.id,
        RETRYABLE,
        status=status,
        attempt=target.attempt + 1,
        error=None,
        lease_owner=None if busy else lease.owner,
        lease_expires_ms=None if busy else lease.until_ms,
    )
    if run is None:
        raise ProtocolError(ErrorCode.CONFLICT, "the run changed; try again", command_id)
    data = RunStateData(run_id=run.id, message_id=run.message_id, attempt=run.attempt)
    kind = EventKind.RUN_QUEUED if busy else EventKind.RUN_STARTED
    await tx.append(session_id, [NewEvent(kind, data.dump(), run.id)])
    result = {"run_id": run.id, "attempt": run.attempt}
    await tx.insert_command(CommandRecord(session_id, command_id, "retry", result))
    await refresh_status(tx, session_id)
    return CommandResult(False, result, [] if busy else [run])


async def _retry_target(
    tx: StoreTx, session_id: str, command_id: str, run_id: str | None
) -> RunRecord:
    if run_id is None:
        candidates = await tx.runs_by_status(session_id, RETRYABLE)
        if not candidates:
            raise ProtocolError(
                ErrorCode.NOT_FOUND, "no failed or cancelled run to retry", command_id
            )
        return candidates[-1]
    run = await tx.lock_run(run_id)
    if run is None or run.session_id != session_id:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no run {run_id} in this session", command_id)
    if run.status not in RETRYABLE:
        message = f"run {run_id} is {run.status}; only failed or cancelled runs can be retried"
        raise ProtocolError(ErrorCode.CONFLICT, message, command_id)
    return run


async def release_leases(tx: StoreTx, run_ids: list[str], owner: str) -> None:
    """On graceful shutdown: expire our leases now so recovery need not wait for them."""
    for run_id in run_ids:
        run = await tx.lock_run(run_id)
        if run is not None and run.status == "running" and run.lease_owner == owner:
            await tx.update_run(run_id, RUNNING, lease_expires_ms=0)
