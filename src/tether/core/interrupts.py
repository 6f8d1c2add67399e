"""Durable human-in-the-loop: pausing a run, answering, deadlines, and resuming safely.

Each function is one unit of work on a ``StoreTx``: the interrupt rows and their
``interrupt.requested`` / ``interrupt.resolved`` events are written together. The first
valid answer wins (compare-and-set on ``status``); an answer is checked against the
stored request, never trusted from the client.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tether.agents.runner import Answer, HumanRequest, Paused
from tether.core import transitions as tr
from tether.protocol.errors import ErrorCode, ProtocolError
from tether.protocol.events import (
    EventKind,
    InterruptRequestedData,
    InterruptResolvedData,
    RunInterruptedData,
    RunStateData,
)
from tether.store.contract import (
    INTERRUPT_PENDING,
    CommandRecord,
    EventRecord,
    InterruptRecord,
    NewEvent,
    RunRecord,
    StoreTx,
    new_id,
    utcnow,
)

WAITING = frozenset({"waiting"})
TOOL_AND_INTERRUPT_EVENTS = frozenset(
    {
        EventKind.TOOL_STARTED,
        EventKind.TOOL_FINISHED,
        EventKind.INTERRUPT_REQUESTED,
        EventKind.INTERRUPT_RESOLVED,
    }
)
EXPIRED_NOTE = "No answer came before the deadline."
RERUN_DENIED_NOTE = "Not run again: the server stopped while it was running."


def args_hash(tool: str | None, args: dict[str, Any] | None) -> str:
    """Binds an approval to the exact tool name and arguments."""
    canonical = json.dumps({"tool": tool, "args": args}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms is not None else None


def requested_event(rec: InterruptRecord) -> NewEvent:
    data = InterruptRequestedData(
        interrupt_id=rec.id,
        kind=rec.kind,
        call_id=rec.call_id,
        tool=rec.tool,
        args=rec.args,
        prompt=rec.prompt,
        choices=rec.choices,
        expires_at=_iso(rec.expires_at_ms),
        on_timeout=rec.on_timeout,
        details=rec.details,
    ).dump()
    return NewEvent(EventKind.INTERRUPT_REQUESTED, data, rec.run_id)


def resolved_event(rec: InterruptRecord) -> NewEvent:
    data = InterruptResolvedData(
        interrupt_id=rec.id,
        outcome=rec.status,
        answer=rec.answer,
        note=rec.note,
        by=rec.answered_by or "",
    ).dump()
    return NewEvent(EventKind.INTERRUPT_RESOLVED, data, rec.run_id)


@dataclass(frozen=True, slots=True)
class Deadlines:
    approval_timeout_s: float
    question_timeout_s: float


def _interrupt(
    run: RunRecord, req: HumanRequest, now_ms: int, limits: Deadlines
) -> InterruptRecord:
    default = limits.approval_timeout_s if req.kind == "approval" else limits.question_timeout_s
    timeout_s = req.timeout_s or default or None
    return InterruptRecord(
        id=new_id("i"),
        session_id=run.session_id,
        run_id=run.id,
        kind=req.kind,
        prompt=req.prompt,
        on_timeout="deny" if req.kind == "approval" else "fail",
        reason=req.kind,
        call_id=req.call_id,
        tool=req.tool,
        args=req.args,
        args_hash=args_hash(req.tool, req.args),
        choices=req.choices,
        expires_at_ms=now_ms + int(timeout_s * 1000) if timeout_s else None,
        details=req.details,
    )


async def _wait_on(tx: StoreTx, run: RunRecord, records: list[InterruptRecord]) -> None:
    for rec in records:
        await tx.insert_interrupt(rec)
    await tx.append(run.session_id, [requested_event(rec) for rec in records])
    await tr.refresh_status(tx, run.session_id)


async def pause_run(
    tx: StoreTx, run_id: str, paused: Paused, lease: tr.Lease, now_ms: int, limits: Deadlines
) -> list[InterruptRecord]:
    """The run needs a person: checkpoint it, record what it asks, free its lease."""
    run = await tr.owned(tx, run_id, lease.owner)
    await tx.update_run(
        run_id,
        tr.RUNNING,
        status="waiting",
        checkpoint=paused.checkpoint,
        lease_owner=None,
        lease_expires_ms=None,
    )
    records = [_interrupt(run, req, now_ms, limits) for req in paused.requests]
    await _wait_on(tx, run, records)
    return records


@dataclass(frozen=True, slots=True)
class RespondRequest:
    session_id: str
    user: str
    command_id: str
    interrupt_id: str
    approved: bool | None
    answer: str | None
    note: str | None


def _invalid(req: RespondRequest, message: str, field: str) -> ProtocolError:
    details = [{"loc": [field], "msg": message, "type": "value_error"}]
    return ProtocolError(ErrorCode.INVALID, message, req.command_id, details=details)


def judge(rec: InterruptRecord, req: RespondRequest) -> tuple[str, str | None]:
    """The outcome an answer gives, checked against the stored request."""
    if rec.kind == "approval":
        if req.answer is not None:
            raise _invalid(req, "an approval takes 'approved', not 'answer'", "answer")
        if req.approved is None:
            raise _invalid(req, "an approval needs 'approved': true or false", "approved")
        return ("approved" if req.approved else "denied"), None
    if req.approved is not None:
        raise _invalid(req, "a question takes 'answer', not 'approved'", "approved")
    if req.answer is None or not req.answer.strip():
        raise _invalid(req, "a question needs a non-empty 'answer'", "answer")
    if rec.choices and req.answer not in rec.choices:
        raise _invalid(req, f"'answer' must be one of {rec.choices}", "answer")
    return "answered", req.answer


async def resolve_interrupt(tx: StoreTx, req: RespondRequest, lease: tr.Lease) -> tr.CommandResult:
    """Apply the first valid answer; later ones get ``conflict``. Resumes the run when it
    has nothing else pending."""
    existing = await tx.get_command(req.session_id, req.command_id)
    if existing is not None:
        return tr.CommandResult(True, existing.result)
    rec = await tx.lock_interrupt(req.interrupt_id)
    if rec is None or rec.session_id != req.session_id:
        raise ProtocolError(
            ErrorCode.NOT_FOUND, "no such interrupt in this session", req.command_id
        )
    if rec.status != INTERRUPT_PENDING:
        raise ProtocolError(ErrorCode.CONFLICT, f"already {rec.status}", req.command_id)
    outcome, answer = judge(rec, req)
    resolved = await _settle(tx, rec, outcome, answer, req.note, req.user)
    started = await resume_if_ready(tx, rec.run_id, lease)
    result = {"interrupt_id": rec.id, "outcome": resolved.status, "run_id": rec.run_id}
    await tx.insert_command(CommandRecord(req.session_id, req.command_id, "respond", result))
    await tr.refresh_status(tx, req.session_id)
    return tr.CommandResult(False, result, [started] if started else [])


async def _settle(
    tx: StoreTx,
    rec: InterruptRecord,
    outcome: str,
    answer: str | None,
    note: str | None,
    by: str,
) -> InterruptRecord:
    resolved = await tx.update_interrupt(
        rec.id,
        INTERRUPT_PENDING,
        status=outcome,
        answer=answer,
        note=note,
        answered_by=by,
        answered_at=utcnow(),
    )
    if resolved is None:
        raise ProtocolError(ErrorCode.CONFLICT, "already answered")
    await tx.append(rec.session_id, [resolved_event(resolved)])
    return resolved


async def resume_if_ready(tx: StoreTx, run_id: str, lease: tr.Lease) -> RunRecord | None:
    """A waiting run with nothing pending goes back to running, under ``lease``."""
    if await tx.run_interrupts(run_id, INTERRUPT_PENDING):
        return None
    run = await tx.update_run(
        run_id, WAITING, status="running", lease_owner=lease.owner, lease_expires_ms=lease.until_ms
    )
    if run is None:
        return None
    data = RunStateData(run_id=run.id, message_id=run.message_id, attempt=run.attempt, resumed=True)
    await tx.append(run.session_id, [NewEvent(EventKind.RUN_STARTED, data.dump(), run.id)])
    return run


async def expire_interrupt(
    tx: StoreTx, interrupt_id: str, now_ms: int, lease: tr.Lease
) -> RunRecord | None:
    """Apply ``on_timeout`` once: ``deny`` resumes the run with a denial, ``fail`` fails it."""
    rec = await tx.lock_interrupt(interrupt_id)
    if rec is None or rec.status != INTERRUPT_PENDING or (rec.expires_at_ms or now_ms + 1) > now_ms:
        return None
    await _settle(tx, rec, "expired", None, EXPIRED_NOTE, "timeout")
    if rec.on_timeout == "deny":
        started = await resume_if_ready(tx, rec.run_id, lease)
        await tr.refresh_status(tx, rec.session_id)
        return started
    await tr.cancel_interrupts(tx, rec.run_id, "timeout")
    end = tr.failed(
        "interrupt_expired", f"no answer to {rec.id} before its deadline", retryable=True
    )
    run = await tx.update_run(rec.run_id, WAITING, status="failed", **end.fields)
    if run is None:
        return None
    await tx.append(run.session_id, [NewEvent(end.kind, end.data, run.id)])
    started = await tr.promote_next(tx, run.session_id, lease)
    await tr.refresh_status(tx, run.session_id)
    return started


# ---------------------------------------------------------------- resuming safely


@dataclass(slots=True)
class _Call:
    state: str = "untouched"
    output: Any = None
    interrupt: InterruptRecord | None = None
    started: dict[str, Any] | None = None


def fold_calls(
    events: list[EventRecord], interrupts: list[InterruptRecord], call_ids: list[str]
) -> dict[str, _Call]:
    """Where each pending call stands, by the run's own log (last word wins)."""
    by_interrupt = {rec.id: rec for rec in interrupts}
    calls = {call_id: _Call() for call_id in call_ids}
    for event in events:
        call_id = event.data.get("call_id")
        rec = by_interrupt.get(str(event.data.get("interrupt_id")))
        if event.kind == EventKind.INTERRUPT_RESOLVED and rec is not None:
            call_id = rec.call_id
        entry = calls.get(str(call_id)) if call_id is not None else None
        if entry is None:
            continue
        if event.kind == EventKind.TOOL_STARTED:
            entry.state, entry.started = "started", event.data
        elif event.kind == EventKind.TOOL_FINISHED:
            entry.state = "finished"
            entry.output = (
                event.data.get("output") if event.data.get("ok") else event.data.get("error")
            )
        elif event.kind == EventKind.INTERRUPT_RESOLVED and rec is not None:
            entry.state, entry.interrupt = "resolved", by_interrupt[rec.id]
    return calls


def answer_for(call_id: str, call: _Call) -> Answer | None:
    if call.state == "finished":
        return Answer(call_id, output=call.output, replay=True)
    rec = call.interrupt
    if call.state != "resolved" or rec is None:
        return None
    if rec.status == "answered":
        return Answer(call_id, answer=rec.answer)
    if rec.status in {"approved", "denied", "expired"}:
        denial = RERUN_DENIED_NOTE if rec.reason == "rerun" else rec.note
        approved = rec.status == "approved"
        note = rec.note if approved else denial
        return Answer(call_id, approved=approved, note=note, by_person=approved)
    return None


def _rerun(run: RunRecord, call_id: str, started: dict[str, Any]) -> InterruptRecord:
    tool = str(started.get("tool"))
    args = started.get("args") if isinstance(started.get("args"), dict) else {}
    return InterruptRecord(
        id=new_id("i"),
        session_id=run.session_id,
        run_id=run.id,
        kind="approval",
        prompt=f"The server stopped while {tool} was running. Run {tool} again?",
        on_timeout="deny",
        reason="rerun",
        call_id=call_id,
        tool=tool,
        args=args,
        args_hash=args_hash(tool, args),
    )


def _ask_again(rec: InterruptRecord, now_ms: int) -> InterruptRecord:
    """A fresh copy of an interrupt that was cancelled or expired, for a retried run."""
    window = None
    if rec.expires_at_ms is not None:
        window = max(0, rec.expires_at_ms - int(rec.created_at.timestamp() * 1000))
    return replace(
        rec, id=new_id("i"), status=INTERRUPT_PENDING, answer=None, note=None,
        answered_by=None, answered_at=None, created_at=utcnow(),
        expires_at_ms=now_ms + window if window is not None else None,
    )  # fmt: skip


async def prepare_resume(
    tx: StoreTx, run_id: str, call_ids: list[str], lease: tr.Lease, now_ms: int
) -> list[Answer] | None:
    """Answers to resume an owned run from its checkpoint, or ``None`` when it must wait
    for a person first: a tool that started never finished (re-run it?), or a question or
    approval whose interrupt was cancelled or expired (a retried run asks again)."""
    run = await tr.owned(tx, run_id, lease.owner)
    events = await tx.run_events(run.session_id, run_id, TOOL_AND_INTERRUPT_EVENTS)
    calls = fold_calls(events, await tx.run_interrupts(run_id), call_ids)
    answers: list[Answer] = []
    asks: list[InterruptRecord] = []
    for call_id, call in calls.items():
        answer = answer_for(call_id, call)
        if call.state == "started" and call.started is not None:
            asks.append(_rerun(run, call_id, call.started))
        elif answer is not None:
            answers.append(answer)
        elif call.interrupt is not None:
            asks.append(_ask_again(call.interrupt, now_ms))
        else:
            answers.append(Answer(call_id, approved=True))
    if not asks:
        return answers
    await tx.update_run(
        run_id, tr.RUNNING, status="waiting", lease_owner=None, lease_expires_ms=None
    )
    await _wait_on(tx, run, asks)
    return None


async def take_over(tx: StoreTx, run_id: str, now_ms: int, lease: tr.Lease) -> RunRecord | None:
    """Recover a checkpointed run whose executor died: log ``run.interrupted`` and take its
    lease; the caller resumes it (``prepare_resume`` decides how)."""
    run = await tx.lock_run(run_id)
    if run is None or run.status != "running" or (run.lease_expires_ms or 0) >= now_ms:
        return None
    taken = await tx.update_run(
        run_id, tr.RUNNING, lease_owner=lease.owner, lease_expires_ms=lease.until_ms
    )
    reason = RunInterruptedData(reason="the executing server stopped; resuming from checkpoint")
    await tx.append(run.session_id, [NewEvent(EventKind.RUN_INTERRUPTED, reason.dump(), run_id)])
    return taken
