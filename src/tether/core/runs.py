"""Executing runs in this process: one owned task per run, leases with heartbeat, recovery.

Agent output is pumped through a bounded queue; whatever accumulated while the previous
append committed is written as one unit (consecutive text deltas merged), so a fast model
costs few commits and a slow store never loses output. A slow client never blocks a run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from tether.agents.registry import AgentRegistry, UnknownAgent
from tether.agents.runner import (
    AgentEvent,
    AgentFailed,
    AssistantMessage,
    Finished,
    Progress,
    RunInput,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from tether.core import transitions as tr
from tether.metrics import Metrics
from tether.protocol.events import (
    EventKind,
    MessageAssistantData,
    ProgressData,
    RunCompletedData,
    TextDeltaData,
    ToolFinishedData,
    ToolStartedData,
)
from tether.store.contract import NewEvent, RunRecord, Store, StoreError, StoreTx, now_ms

log = structlog.get_logger(__name__)
PUMP_QUEUE_ITEMS = 256
RECOVERY_BATCH = 100


@dataclass(frozen=True, slots=True)
class RunConfig:
    server_id: str
    lease_s: float
    recovery_interval_s: float
    run_timeout_s: float
    shutdown_grace_s: float


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


def to_new_event(event: AgentEvent, run_id: str) -> NewEvent | None:
    """Translate one runner event into the log event it becomes (``Finished`` becomes none)."""
    match event:
        case TextDelta(message_id, delta):
            data = TextDeltaData(message_id=message_id, delta=delta).dump()
            return NewEvent(EventKind.TEXT_DELTA, data, run_id)
        case AssistantMessage(message_id, content):
            data = MessageAssistantData(message_id=message_id, content=content).dump()
            return NewEvent(EventKind.MESSAGE_ASSISTANT, data, run_id)
        case ToolStarted(call_id, tool, args):
            data = ToolStartedData(call_id=call_id, tool=tool, args=args).dump()
            return NewEvent(EventKind.TOOL_STARTED, data, run_id)
        case ToolFinished(call_id, tool, ok, output, error):
            finished = ToolFinishedData(
                call_id=call_id, tool=tool, ok=ok, output=output, error=error
            )
            return NewEvent(EventKind.TOOL_FINISHED, finished.dump(), run_id)
        case Progress(label, done, total):
            data = ProgressData(label=label, done=done, total=total).dump()
            return NewEvent(EventKind.PROGRESS, data, run_id)
    return None


def coalesce(events: Sequence[AgentEvent]) -> list[AgentEvent]:
    """Merge consecutive text deltas of one message into one delta."""
    merged: list[AgentEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, TextDelta)
            and isinstance(last, TextDelta)
            and last.message_id == event.message_id
        ):
            merged[-1] = TextDelta(event.message_id, last.delta + event.delta)
            continue
        merged.append(event)
    return merged


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

    async def start(self) -> None:
        await self.recover_once()
        self._loops = [
            asyncio.create_task(self._every(self._config.lease_s / 3, self._heartbeat)),
            asyncio.create_task(self._every(self._config.recovery_interval_s, self.recover_once)),
        ]

    async def stop(self) -> None:
        """Stop loops, cancel and await run tasks, then release their leases. Idempotent."""
        self._stopping = True
        loops, self._loops = self._loops, []
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        running = list(self._tasks)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._config.shutdown_grace_s)
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

    async def _every(self, interval_s: float, job: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except StoreError as exc:
                log.warning(
                    "background_job_store_error", job=getattr(job, "__name__", ""), error=str(exc)
                )
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
        """Fail runs whose executing server stopped; returns how many were recovered."""
        expired = await self._store.expired_runs(now_ms(), RECOVERY_BATCH)
        for run in expired:
            if run.id in self._tasks:
                continue
            now, lease = now_ms(), self.lease()
            started = await self._store.write(_recover(run.id, now, lease))
            log.warning("run_recovered", run_id=run.id, session_id=run.session_id)
            self._metrics.runs_finished.labels(outcome="interrupted").inc()
            self.launch([started] if started else [])
        return len(expired)

    async def _execute(self, run: RunRecord) -> None:
        bound = log.bind(run_id=run.id, session_id=run.session_id)
        bound.info("run_started", attempt=run.attempt)
        started = asyncio.get_running_loop().time()
        try:
            outcome = await self._outcome(run, bound)
        except tr.RunLost:
            bound.info("run_lost")
            return
        try:
            following = await self._store.write(_finish(run.id, outcome, self.lease()))
        except tr.RunLost:
            bound.info("run_lost")
            return
        self._metrics.runs_finished.labels(outcome=outcome.status).inc()
        self._metrics.run_seconds.observe(asyncio.get_running_loop().time() - started)
        bound.info("run_finished", outcome=outcome.status)
        self.launch([following] if following else [])

    async def _outcome(
        self, run: RunRecord, bound: structlog.typing.FilteringBoundLogger
    ) -> tr.Outcome:
        try:
            async with asyncio.timeout(self._config.run_timeout_s):
                finished = await self._pump(run, await self._stream(run))
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
        usage = RunCompletedData(usage=finished.usage or None).dump()
        fields = {"checkpoint": finished.checkpoint, "usage": finished.usage or None}
        return tr.Outcome("completed", EventKind.RUN_COMPLETED, usage, fields)

    async def _stream(self, run: RunRecord) -> AsyncIterator[AgentEvent]:
        session = await self._store.get_session(run.session_id)
        if session is None:
            raise tr.RunLost(run.id)
        runner = self._registry.runner(session.agent)
        history = await self._store.latest_checkpoint(run.session_id)
        return runner.start(RunInput(run.id, run.session_id, run.prompt, history, session.metadata))

    async def _pump(self, run: RunRecord, stream: AsyncIterator[AgentEvent]) -> Finished:
        queue: asyncio.Queue[AgentEvent | _End] = asyncio.Queue(maxsize=PUMP_QUEUE_ITEMS)
        producer = asyncio.create_task(_produce(stream, queue))
        finished = Finished(None)
        try:
            while True:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                outputs = [i for i in items if not isinstance(i, _End | Finished)]
                finished = next((i for i in items if isinstance(i, Finished)), finished)
                if outputs:
                    await self._append(run, coalesce(outputs))
                end = next((i for i in items if isinstance(i, _End)), None)
                if end is not None:
                    if end.error is not None:
                        raise end.error
                    return finished
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _append(self, run: RunRecord, outputs: list[AgentEvent]) -> None:
        events = [e for e in (to_new_event(o, run.id) for o in outputs) if e is not None]
        if events:
            lease = self.lease()
            await self._store.write(lambda tx: tr.append_output(tx, run.id, events, lease))


def _recover(
    run_id: str, now: int, lease: tr.Lease
) -> Callable[[StoreTx], Awaitable[RunRecord | None]]:
    return lambda tx: tr.recover_run(tx, run_id, now, lease)


def _finish(
    run_id: str, outcome: tr.Outcome, lease: tr.Lease
) -> Callable[[StoreTx], Awaitable[RunRecord | None]]:
    return lambda tx: tr.finish_run(tx, run_id, outcome, lease)


async def _produce(
    stream: AsyncIterator[AgentEvent], queue: asyncio.Queue[AgentEvent | _End]
) -> None:
    try:
        async for event in stream:
            await queue.put(event)
        await queue.put(_End())
    except Exception as exc:
        await queue.put(_End(exc))
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
