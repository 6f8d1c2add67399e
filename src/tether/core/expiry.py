"""Session expiry: sessions idle longer than ``ttl_s`` are deleted with all their rows, and
their open sockets are closed with 4404, so storage and memory return to their baseline.

"Idle" means ``sessions.updated_at`` (bumped by every append and edit) is older than the
TTL and no run is queued or running; a session waiting for a person is idle too.
Deletion goes in bounded batches, one transaction each; a second instance sweeping at
the same time skips rows the first has locked (Postgres) or finds them gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog

from tether.core.hub import CloseRequest, Hub
from tether.protocol.errors import CloseCode
from tether.store.contract import Store, StoreError, utcnow

log = structlog.get_logger(__name__)
REAP_BATCH = 200
MAX_BATCHES_PER_PASS = 50


class SessionReaper:
    def __init__(self, store: Store, hub: Hub, ttl_s: float, interval_s: float) -> None:
        self._store = store
        self._hub = hub
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start the periodic sweep (not when ``ttl_s`` is 0: sessions live forever)."""
        if self._ttl_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="tether-session-reaper")

    async def stop(self) -> None:
        """Cancel and await the sweep. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.reap_once()
            except StoreError as exc:
                log.warning("session_reap_store_error", error=str(exc))
            except Exception:
                log.exception("session_reap_failed")

    async def reap_once(self, now: datetime | None = None) -> int:
        """Expire every session idle since before ``now - ttl_s`` (up to
        ``REAP_BATCH * MAX_BATCHES_PER_PASS`` per pass); returns how many."""
        cutoff = (now or utcnow()) - timedelta(seconds=self._ttl_s)
        total = 0
        for _ in range(MAX_BATCHES_PER_PASS):
            ids = await self._store.write(lambda tx: tx.delete_idle_sessions(cutoff, REAP_BATCH))
            for session_id in ids:
                self._hub.close_session(
                    session_id, CloseRequest(CloseCode.NOT_FOUND, "session expired")
                )
            total += len(ids)
            if len(ids) < REAP_BATCH:
                break
        if total:
            log.info("sessions_expired", count=total, idle_before=cutoff.isoformat())
        return total
