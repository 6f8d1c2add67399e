"""The bounded queue of applied events that ``events()``/``next_event()`` read from."""

from __future__ import annotations

import asyncio

from tether.client.errors import TetherError
from tether.protocol.frames import EventFrame


class _End:
    """Marker put once at the end of the stream; left in place for every later reader."""

    def __init__(self, error: TetherError) -> None:
        self.error = error


class EventInbox:
    """A bounded FIFO with the overflow policy **drop-oldest**.

    A slow reader loses the oldest unread events (counted in ``dropped``), never blocks
    the socket reader, and never grows memory. Session state is not affected: it keeps
    every applied event up to its own ``max_events``.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._queue: asyncio.Queue[EventFrame | _End] = asyncio.Queue(maxsize=maxsize)
        self._ended = False
        self.dropped = 0

    def qsize(self) -> int:
        return self._queue.qsize()

    def put(self, event: EventFrame) -> bool:
        """Enqueue ``event``; True when an older event had to be dropped for it."""
        if self._ended:
            return False
        dropped = self._make_room()
        self._queue.put_nowait(event)
        return dropped

    def end(self, error: TetherError) -> None:
        """Close the stream: readers get the queued events, then ``error``. Idempotent."""
        if not self._ended:
            self._ended = True
            self._make_room()
            self._queue.put_nowait(_End(error))

    async def get(self) -> EventFrame:
        """The next event (no deadline here: callers wrap it in ``asyncio.timeout``)."""
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # room is certain: we just took one
            raise item.error
        return item

    def _make_room(self) -> bool:
        if not self._queue.full():
            return False
        self._queue.get_nowait()
        self.dropped += 1
        return True
