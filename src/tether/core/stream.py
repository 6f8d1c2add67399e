"""What one connection sends, in order: welcome, replay or snapshot, then live events.

The sender is driven by its cursor (``last_seq``): a live event at or below the cursor is
dropped, one that leaves a gap makes it re-read the log first. So a client sees every
event exactly once, in ``seq`` order, whatever the bus drops or repeats (guarantee 2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from tether.core.hub import CloseRequest, Outbox
from tether.metrics import Metrics
from tether.protocol.codec import encode
from tether.protocol.frames import Cursor, EventFrame, EventsFrame
from tether.store.contract import EventRecord, SessionRecord, Store

Send = Callable[[str], Awaitable[None]]


class Closing(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def can_resume(session: SessionRecord, cursor: Cursor | None, max_replay: int) -> bool:
    """Whether the events after ``cursor`` can be served exactly (guarantee 3)."""
    if cursor is None or cursor.epoch != session.epoch:
        return False
    return cursor.seq <= session.head_seq and session.head_seq - cursor.seq <= max_replay


def event_frame(event: EventRecord) -> EventFrame:
    return EventFrame(
        seq=event.seq,
        epoch=event.epoch,
        ts=event.ts.isoformat(),
        session_id=event.session_id,
        run_id=event.run_id,
        event=event.kind,
        data=event.data,
    )


class EventStream:
    def __init__(
        self,
        store: Store,
        session: SessionRecord,
        outbox: Outbox,
        send: Send,
        metrics: Metrics,
        batch_events: int,
    ) -> None:
        self._store = store
        self._session = session
        self._outbox = outbox
        self._send = send
        self._metrics = metrics
        self._batch = batch_events
        self.last_seq = 0

    async def send_frame(self, frame: BaseModel) -> None:
        await self._send(encode(frame))
        self._metrics.frames_out.labels(type=getattr(frame, "type", "?")).inc()

    async def replay(self, after: int, until: int) -> int:
        """Send the logged events in (after, until] as batches; returns how many. A log
        that cannot serve the whole range closes the connection (1011) rather than leave a
        hole on the wire."""
        self.last_seq, sent = after, 0
        while self.last_seq < until:
            page = await self._store.read_events(
                self._session.id, self.last_seq, min(self._batch, until - self.last_seq)
            )
            if not page or page[0].seq != self.last_seq + 1:
                # Never a silent partial replay: the client reconnects and resumes from
                # the last event it really got.
                raise Closing(1011, f"could not replay the log after seq {self.last_seq}")
            frames = [event_frame(e) for e in page]
            await self.send_frame(frames[0] if len(frames) == 1 else EventsFrame(events=frames))
            self.last_seq, sent = page[-1].seq, sent + len(page)
        return sent

    async def snapshot(self, frame: BaseModel, as_of_seq: int) -> None:
        await self.send_frame(frame)
        self.last_seq = as_of_seq
        self._metrics.snapshots.inc()

    async def deliver(self, event: EventRecord) -> None:
        if event.epoch != self._session.epoch:
            raise Closing(1012, "session log was reset; reconnect")
        if event.seq <= self.last_seq:
            return
        if event.seq > self.last_seq + 1:
            await self.replay(self.last_seq, event.seq - 1)
        await self.send_frame(event_frame(event))
        self.last_seq = event.seq

    async def pump(self) -> None:
        """Send outbox items until a close is requested (raises ``Closing``)."""
        while True:
            item = await self._outbox.get()
            if isinstance(item, EventRecord):
                await self.deliver(item)
            elif isinstance(item, CloseRequest):
                raise Closing(item.code, item.reason)
            else:
                await self.send_frame(item)
