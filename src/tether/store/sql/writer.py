"""Group commit: one writer task per process runs the units of work that arrive together in
one transaction, each inside its own savepoint, then publishes what committed.

Guarantees: a unit's events reach the commit hook only after its transaction committed
(write-ahead); a failing unit rolls back alone (its savepoint); a unit is applied at most
once: when the transaction itself fails (connection lost, COMMIT refused) its outcome is
unknown, so every unit of the batch gets ``StoreUnavailable`` and none is re-run, since a
COMMIT that raised may still have landed (callers retry by command id, runs fail
retryable); a unit whose caller timed out before the writer reached it is skipped, so
``StoreUnavailable`` from a deadline means "not applied"; the queue is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tether.store.contract import CommitHook, EventRecord, StoreUnavailable, WriteFn

log = structlog.get_logger(__name__)

TxFactory = Callable[[AsyncConnection], Any]


@dataclass(eq=False)
class _Unit:
    fn: WriteFn[Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    events: list[EventRecord] = field(default_factory=list)
    started: bool = False
    abandoned: bool = False


def _observed(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class GroupWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        make_tx: TxFactory,
        *,
        batch_max: int,
        queue_max: int,
        timeout_s: float,
        observe_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._engine = engine
        self._make_tx = make_tx
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Unit] = asyncio.Queue(maxsize=queue_max)
        self._timeout_s = timeout_s
        self._observe = observe_batch
        self._on_commit: CommitHook = lambda events: None
        self._task: asyncio.Task[None] | None = None

    def start(self, on_commit: CommitHook) -> None:
        self._on_commit = on_commit
        self._task = asyncio.create_task(self._loop(), name="tether-group-writer")

    async def stop(self) -> None:
        """Finish what is queued (within the deadline), then stop. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout_s):
                await self._queue.join()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while not self._queue.empty():
            unit = self._queue.get_nowait()
            if not unit.future.done():
                unit.future.set_exception(StoreUnavailable("store is shutting down"))

    async def submit(self, fn: WriteFn[Any]) -> Any:
        if self._task is None:
            raise StoreUnavailable("store is not started")
        unit = _Unit(fn, asyncio.get_running_loop().create_future())
        # A caller cancelled while waiting leaves the outcome unread; mark it observed.
        unit.future.add_done_callback(_observed)
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._queue.put(unit)
                return await asyncio.shield(unit.future)
        except TimeoutError:
            if not unit.started:
                unit.abandoned = True  # the writer will skip it: certainly not applied
                raise StoreUnavailable(f"store write timed out after {self._timeout_s}s") from None
        # Already inside a transaction: its outcome decides, within one more deadline.
        try:
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.shield(unit.future)
        except TimeoutError:
            raise StoreUnavailable(
                f"store write outcome unknown after {2 * self._timeout_s}s"
            ) from None

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _run(self, batch: list[_Unit]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._commit(batch)
        except Exception as exc:
            log.warning("group_commit_failed", size=len(batch), error=str(exc))
            failure = StoreUnavailable(f"store transaction failed: {exc}")
            for unit in batch:
                unit.error, unit.events = failure, []
        else:
            if self._observe:
                self._observe(len(batch), loop.time() - started)
        self._settle(batch)

    async def _commit(self, batch: Sequence[_Unit]) -> None:
        async with self._engine.connect() as conn, conn.begin():
            for unit in batch:
                await self._apply(conn, unit)

    async def _apply(self, conn: AsyncConnection, unit: _Unit) -> None:
        if unit.abandoned:
            unit.error = StoreUnavailable("store write timed out before it started")
            return
        unit.started = True
        tx = self._make_tx(conn)
        try:
            async with conn.begin_nested():
                unit.result = await unit.fn(tx)
            unit.events = list(tx.appended)
        except Exception as exc:
            unit.error, unit.events = exc, []

    def _settle(self, batch: Sequence[_Unit]) -> None:
        committed = [event for unit in batch if unit.error is None for event in unit.events]
        if committed:
            try:
                self._on_commit(committed)
            except Exception:
                log.exception("commit_hook_failed")
        for unit in batch:
            if unit.future.done():
                continue
            if unit.error is not None:
                unit.future.set_exception(unit.error)
            else:
                unit.future.set_result(unit.result)
