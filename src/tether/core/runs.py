"""Executing runs in this process: one owned task per run, leases with heartbeat, recovery
of runs whose server died, and the interrupt deadline sweeper.

Agent output is pumped through a bounded queue; whatever accumulated while the previous
append committed is written as one unit (consecutive text deltas merged). A slow client
never blocks a run. A paused run costs no task: waiting is a row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from tether.agents.registry import AgentRegistry, UnknownAgent
from tether.agents.runner import AgentEvent, AgentFailed, Finished, Paused, RunInput
from tether.core import interrupts as hitl
from tether.core import transitions as tr
from tether.core.output import End, barriers, coalesce, produce, release, to_new_event
from tether.core.quotas import record_usage
from tether.metrics import Metrics
from tether.protocol.events import EventKind, RunCompletedData, SessionData
from tether.store.contract import (
    InterruptRecord,
    NewEvent,
    RunRecord,
    Store,
    StoreError,
    StoreTx,
    now_ms,
)

log = structlog.get_logger(__name__)
PUMP_QUEUE_ITEMS = 256
SWEEP_BATCH = 100
Logger = Any


@dataclass(frozen=True, slots=True)
class RunConfig:
    server_id: str
    lease_s: float
    recovery_interval_s: float
    run_timeout_s: float
    shutdown_grace_s: float
    sweep_interval_s: float = 1.0
    deadlines: hitl.Deadlines = field(default_factory=lambda: hitl.Deadlines(0.0, 0.0))


class RunManager:
    def __init__(
        self, store: Store, registry: AgentRegistry, config: RunConfig, metrics: Metrics
    ) -> None:
        self._store = store
        self._registry = registry
        self._config = config
        self._metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def active(self) -> int:
        return len(self._tasks)

    def lease(self) -> tr.Lease:
        return tr.Lease(self._config.server_id, now_ms() + int(self._config.lease_s * 1000))

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.recover_once()
        await self.sweep_once()
        c = self._config
        self._loops = [
            asyncio.create_task(self._every(c.lease_s / 3, self._heartbeat)),
            asyncio.create_task(self._every(c.recovery_interval_s, self.recover_once)),
            asyncio.create_task(self._every(c.sweep_interval_s, self.sweep_once)),
        ]

    async def stop(self) -> None:
        """Stop loops, cancel and await run tasks, then release their leases. Idempotent."""
        self._stopping = True
        loops, self._loops = self._loops, []
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        running = list(self._tasks)
        await self.stop_local(running)
        if running:
            with contextlib.suppress(StoreError):
                owner = self._config.server_id
                await self._store.write(lambda tx: tr.release_leases(tx, running, owner))

    def launch(self, runs: list[RunRecord]) -> None:
        for run in runs:
            if self._stopping or run.id in self._tasks:
                continue
            task = asyncio.create_task(self._execute(run), name=f"run-{run.id}")
            self._tasks[run.id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        run_id = task.get_name().removeprefix("run-")
        if self._tasks.get(run_id) is task:
            del self._tasks[run_id]

    async def stop_local(self, run_ids: list[str]) -> None:
        """Cancel local tasks of runs whose state was already ended in the store."""
        tasks = [self._tasks[r] for r in run_ids if r in self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._config.shutdown_grace_s)

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await job()
            except StoreError as exc:
                log.warning("background_job_store_error", error=str(exc))
            except Exception:
                log.exception("background_job_failed")

    async def _heartbeat(self) -> None:
        run_ids = list(self._tasks)
        if not run_ids:
            return
        lease = self.lease()
        lost = await self._store.write(lambda tx: tr.renew_leases(tx, run_ids, lease))
        if lost:
            log.warning("run_leases_lost", run_ids=lost)
            await self.stop_local(lost)

    async def recover_once(self) -> int:
        """Runs whose executing server stopped: resume from their checkpoint, or fail them
        as retryable when they have none. Returns how many were recovered."""
        expired = [
            r
            for r in await self._store.expired_runs(now_ms(), SWEEP_BATCH)
            if r.id not in self._tasks
        ]
        for run in expired:
            now, lease = now_ms(), self.lease()
            if run.checkpoint is not None:
                taken = await self._store.write(_take_over(run.id, now, lease))
                self.launch([taken] if taken else [])
            else:
                started = await self._store.write(_recover(run.id, now, lease))
                self._metrics.runs_finished.labels(outcome="interrupted").inc()
                self.launch([started] if started else [])
            log.warning(
                "run_recovered",
                run_id=run.id,
                session_id=run.session_id,
                from_checkpoint=run.checkpoint is not None,
            )
        return len(expired)

    async def sweep_once(self) -> int:
        """Apply ``on_timeout`` to interrupts past their deadline (once, whoever sweeps)."""
        due = await self._store.due_interrupts(now_ms(), SWEEP_BATCH)
        for rec in due:
            now, lease = now_ms(), self.lease()
            started = await self._store.write(_expire(rec.id, now, lease))
            self._metrics.interrupts_resolved.labels(outcome="expired").inc()
            self.launch([started] if started else [])
        return len(due)

    # ------------------------------------------------------------ executing

    async def _execute(self, run: RunRecord) -> None:
        bound = log.bind(run_id=run.id, session_id=run.session_id)
        bound.info("run_executing", attempt=run.attempt, resume=run.checkpoint is not None)
        started = asyncio.get_running_loop().time()
        try:
            result = await self._outcome(run, bound)
            if result is None:
                return
            following = await self._settle(run, result)
        except tr.RunLost:
            bound.info("run_lost")
            return
        if isinstance(result, tr.Outcome):
            self._metrics.runs_finished.labels(outcome=result.status).inc()
            self._metrics.run_seconds.observe(asyncio.get_running_loop().time() - started)
        bound.info("run_step_done", outcome=getattr(result, "status", "waiting"))
        self.launch(following)

    async def _settle(self, run: RunRecord, result: tr.Outcome | Paused) -> list[RunRecord]:
        if isinstance(result, Paused):
            now, lease, limits = now_ms(), self.lease(), self._config.deadlines
            records = await self._store.write(_pause(run, result, lease, now, limits))
            for rec in records:
                self._metrics.interrupts_opened.labels(kind=rec.kind).inc()
            return []
        following = await self._store.write(_finish(run.id, result, self.lease()))
        return [following] if following else []

    async def _outcome(self, run: RunRecord, bound: Logger) -> tr.Outcome | Paused | None:
        try:
            async with asyncio.timeout(self._config.run_timeout_s):
                stream = await self._stream(run)
                if stream is None:
                    return None
                final = await self._pump(run, stream)
        except AgentFailed as exc:
            return tr.failed(exc.code, exc.message, retryable=exc.retryable)
        except UnknownAgent as exc:
            return tr.failed("unknown_agent", str(exc), retryable=False)
        except TimeoutError:
            limit = self._config.run_timeout_s
            return tr.failed("timeout", f"run exceeded {limit}s", retryable=True)
        except (tr.RunLost, asyncio.CancelledError):
            raise
        except Exception as exc:
            bound.exception("run_crashed")
            return tr.failed("internal", f"{type(exc).__name__}: {exc}", retryable=True)
        if isinstance(final, Paused):
            return final
        usage = RunCompletedData(usage=final.usage or None).dump()
        fields = {"checkpoint": final.checkpoint, "usage": final.usage or None}
        return tr.Outcome("completed", EventKind.RUN_COMPLETED, usage, fields)

    async def _stream(self, run: RunRecord) -> AsyncIterator[AgentEvent] | None:
        """The runner's stream: a fresh start, or a resume from the run's checkpoint
        (``None`` when a crashed tool made the run wait for a person instead)."""
        session = await self._store.get_session(run.session_id)
        if session is None:
            raise tr.RunLost(run.id)
        runner = self._registry.runner(session.agent)
        base = RunInput(
            run.id,
            run.session_id,
            run.prompt,
            metadata=session.metadata,
            attempt=run.attempt,
            update_metadata=self._metadata_updater(run.id),
        )
        if run.checkpoint is None:
            history = await self._store.latest_checkpoint(run.session_id)
            return runner.start(_with(base, history=history))
        calls = runner.pending_calls(run.checkpoint)
        lease, now = self.lease(), now_ms()
        answers = await self._store.write(
            lambda tx: hitl.prepare_resume(tx, run.id, calls, lease, now)
        )
        if answers is None:
            return None
        return runner.resume(_with(base, checkpoint=run.checkpoint, answers=answers))

    def _metadata_updater(
        self, run_id: str
    ) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Awaitable[None]]:
        async def update(change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
            await self._store.write(_update_metadata(run_id, change, self._config.server_id))

        return update

    async def _pump(self, run: RunRecord, stream: AsyncIterator[AgentEvent]) -> Finished | Paused:
        queue: asyncio.Queue[AgentEvent | End] = asyncio.Queue(maxsize=PUMP_QUEUE_ITEMS)
        producer = asyncio.create_task(produce(stream, queue))
        final: Finished | Paused = Finished(None)
        try:
            while True:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                outputs = [i for i in items if not isinstance(i, End | Finished | Paused)]
                final = next((i for i in items if isinstance(i, Finished | Paused)), final)
                if outputs:
                    await self._append(run, coalesce(outputs))
                end = next((i for i in items if isinstance(i, End)), None)
                if end is not None:
                    if end.error is not None:
                        raise end.error
                    return final
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _append(self, run: RunRecord, outputs: list[AgentEvent]) -> None:
        """Write a batch of output; tools waiting on their ``tool.started`` go on only once
        it (and their checkpoint) committed."""
        waiting = barriers(outputs)
        checkpoint = next((s.checkpoint for s in reversed(waiting) if s.checkpoint), None)
        lease = self.lease()
        try:
            events = [e for e in (to_new_event(o, run.id) for o in outputs) if e is not None]
            if events:
                await self._store.write(
                    lambda tx: tr.append_output(tx, run.id, events, lease, checkpoint)
                )
        except BaseException as exc:
            release(waiting, tr.RunLost(run.id) if isinstance(exc, Exception) else None)
            raise
        release(waiting)


def _with(base: RunInput, **changes: Any) -> RunInput:
    return replace(base, **changes)


WriteOp = Callable[[StoreTx], Awaitable[RunRecord | None]]


def _recover(run_id: str, now: int, lease: tr.Lease) -> WriteOp:
    return lambda tx: tr.recover_run(tx, run_id, now, lease)


def _take_over(run_id: str, now: int, lease: tr.Lease) -> WriteOp:
    return lambda tx: hitl.take_over(tx, run_id, now, lease)


def _expire(interrupt_id: str, now: int, lease: tr.Lease) -> WriteOp:
    return lambda tx: hitl.expire_interrupt(tx, interrupt_id, now, lease)


def _pause(
    run: RunRecord, paused: Paused, lease: tr.Lease, now: int, limits: hitl.Deadlines
) -> Callable[[StoreTx], Awaitable[list[InterruptRecord]]]:
    """Pause the run and count the model usage of the step that led to the pause."""

    async def op(tx: StoreTx) -> list[InterruptRecord]:
        records = await hitl.pause_run(tx, run.id, paused, lease, now, limits)
        await record_usage(tx, run.session_id, paused.usage)
        return records

    return op


def _finish(run_id: str, outcome: tr.Outcome, lease: tr.Lease) -> WriteOp:
    return lambda tx: tr.finish_run(tx, run_id, outcome, lease)


def _update_metadata(
    run_id: str, change: Callable[[dict[str, Any]], dict[str, Any]], owner: str
) -> Callable[[StoreTx], Awaitable[None]]:
    """A tool's write to its session's metadata, only while this instance owns the run."""

    async def op(tx: StoreTx) -> None:
        run = await tr.owned(tx, run_id, owner)
        session = await tx.lock_session(run.session_id)
        if session is None:
            raise tr.RunLost(run_id)
        updated = await tx.update_session(run.session_id, None, metadata=change(session.metadata))
        data = SessionData(
            title=updated.title,
            agent=updated.agent,
            metadata=updated.metadata,
            policy=updated.policy,
        ).dump()
        await tx.append(run.session_id, [NewEvent(EventKind.SESSION_UPDATED, data, run_id)])

    return op
