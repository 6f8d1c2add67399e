"""Live fan-out inside one process: committed events go to every connection of a session.

Each connection has an ``Outbox``: a bounded queue whose overflow policy is
``CLOSE_SLOW_CONSUMER``: the publisher never waits; a full outbox marks the connection
overflowed and its socket is closed with 4008 (the client resumes from its cursor).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel

from tether.store.contract import EventRecord


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """An outbox item asking the connection to close (e.g. its session was deleted)."""

    code: int
    reason: str


OutboxItem = EventRecord | BaseModel | CloseRequest
CLOSE_SLOW_CONSUMER: Final = "close_slow_consumer"


class Outbox:
    """A connection's outbound queue of events and control frames."""

    overflow_policy: Final = CLOSE_SLOW_CONSUMER

    def __init__(self, max_items: int) -> None:
        self._queue: asyncio.Queue[OutboxItem] = asyncio.Queue(maxsize=max_items)
        self.overflowed = asyncio.Event()

    def offer(self, item: OutboxItem) -> bool:
        """Queue ``item`` without waiting; on overflow flag the connection and drop it."""
        if self.overflowed.is_set():
            return False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True

    async def get(self) -> OutboxItem:
        return await self._queue.get()

    def qsize(self) -> int:
        return self._queue.qsize()


class TooManyConnections(Exception):
    pass


class Hub:
    """Session id → outboxes of this process's connections to it."""

    def __init__(self, max_per_session: int, max_total: int) -> None:
        self._subs: defaultdict[str, set[Outbox]] = defaultdict(set)
        self._max_per_session = max_per_session
        self._max_total = max_total
        self._total = 0

    @property
    def connections(self) -> int:
        return self._total

    def subscribe(self, session_id: str, outbox: Outbox) -> None:
        if self._total >= self._max_total:
            raise TooManyConnections("server connection limit reached")
        if len(self._subs[session_id]) >= self._max_per_session:
            if not self._subs[session_id]:
                del self._subs[session_id]
            raise TooManyConnections("connection limit for this session reached")
        self._subs[session_id].add(outbox)
        self._total += 1

    def unsubscribe(self, session_id: str, outbox: Outbox) -> None:
        subs = self._subs.get(session_id)
        if subs is None or outbox not in subs:
            return
        subs.discard(outbox)
        self._total -= 1
        if not subs:
            del self._subs[session_id]

    def sessions(self) -> int:
        return len(self._subs)

    def dispatch(self, events: Sequence[EventRecord]) -> None:
        """Offer each event to every local subscriber of its session. Never blocks."""
        for event in events:
            for outbox in tuple(self._subs.get(event.session_id, ())):
                outbox.offer(event)

    def close_session(self, session_id: str, frame: OutboxItem) -> None:
        """Tell every local connection of a session that it is gone (deleted)."""
        for outbox in tuple(self._subs.get(session_id, ())):
            outbox.offer(frame)
