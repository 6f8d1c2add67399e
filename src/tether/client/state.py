"""Client-side session state: the cursor, duplicate drop, gap detection and text folding.

Pure: frames in, applied events out. No I/O, no clock, no logging, so every rule here is
tested without a socket (tests/unit/test_client_state.py).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from tether.client.errors import EpochError, GapError, StreamError
from tether.protocol.frames import EventFrame, EventsFrame, SnapshotFrame, WelcomeFrame

DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_TEXTS = 10_000


class SessionState:
    """What one client knows about one session.

    Guarantees: ``apply`` returns each ``seq`` at most once per epoch and in increasing
    order; an event that would leave a gap is never applied (``GapError``); the cursor
    (``epoch``, ``last_seq``) is kept even when old events are evicted from ``events``
    (at most ``max_events``, oldest evicted first) and texts (at most ``max_texts``
    messages, oldest evicted first).
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_texts: int = DEFAULT_MAX_TEXTS,
    ) -> None:
        if max_events < 1 or max_texts < 1:
            raise ValueError("max_events and max_texts must be at least 1")
        self.session_id = session_id
        self.epoch: str | None = None
        self.last_seq = 0
        self.head_seq = 0
        self.events: deque[EventFrame] = deque(maxlen=max_events)
        self.snapshot: SnapshotFrame | None = None
        self.welcome: WelcomeFrame | None = None
        self.duplicates_dropped = 0
        self._max_texts = max_texts
        # Parts, joined on read: appending deltas to one str would be quadratic.
        self._texts: OrderedDict[str, list[str]] = OrderedDict()

    # ------------------------------------------------------------------ reading

    @property
    def cursor(self) -> tuple[str, int] | None:
        """``(epoch, last_seq)`` to resume from, or None before the first welcome."""
        return None if self.epoch is None else (self.epoch, self.last_seq)

    @property
    def applied_seqs(self) -> list[int]:
        """The ``seq`` of every retained applied event, in the order applied."""
        return [event.seq for event in self.events]

    def text(self, message_id: str) -> str:
        """The assistant text of ``message_id`` so far ("" if nothing seen)."""
        return "".join(self._texts.get(message_id, ()))

    # ------------------------------------------------------------------ applying

    def apply(self, frame: BaseModel) -> list[EventFrame]:
        """Fold one server frame in; return only the events newly applied.

        Control frames other than welcome and snapshot (ack, error, pong) change nothing.
        Raises ``GapError``/``EpochError`` (with ``applied`` filled) when the stream must
        be resumed; the offending event and those after it are not applied.
        """
        if isinstance(frame, WelcomeFrame):
            self._apply_welcome(frame)
        elif isinstance(frame, SnapshotFrame):
            self._apply_snapshot(frame)
        elif isinstance(frame, EventFrame):
            return self._apply_events([frame])
        elif isinstance(frame, EventsFrame):
            return self._apply_events(frame.events)
        return []

    def _apply_welcome(self, welcome: WelcomeFrame) -> None:
        # A new epoch means the old log may have lost entries: the cursor is meaningless.
        changed = welcome.epoch != self.epoch or welcome.session_id != self.session_id
        if changed and self.epoch is not None:
            self._reset()
        self.session_id = welcome.session_id
        self.epoch = welcome.epoch
        self.head_seq = welcome.head_seq
        self.welcome = welcome

    def _reset(self) -> None:
        self.last_seq = 0
        self.events.clear()
        self._texts.clear()
        self.snapshot = None

    def _apply_snapshot(self, snapshot: SnapshotFrame) -> None:
        # The snapshot is the truth up to as_of_seq; keep `events` strictly increasing.
        while self.events and self.events[-1].seq > snapshot.as_of_seq:
            self.events.pop()
        self.last_seq = snapshot.as_of_seq
        self.snapshot = snapshot
        self._texts.clear()
        for message in snapshot.messages:
            self._seed_text(message)

    def _seed_text(self, message: dict[str, Any]) -> None:
        message_id, content = message.get("message_id"), message.get("content")
        if message.get("role") != "assistant" or not isinstance(message_id, str):
            return
        self._set_text(message_id, [content] if isinstance(content, str) else [])

    def _apply_events(self, events: Iterable[EventFrame]) -> list[EventFrame]:
        applied: list[EventFrame] = []
        for event in events:
            try:
                if self._apply_event(event):
                    applied.append(event)
            except StreamError as exc:
                exc.applied = applied
                raise
        return applied

    def _apply_event(self, event: EventFrame) -> bool:
        """Apply one event; False for a duplicate (dropped), raise for a gap."""
        if self.epoch is not None and event.epoch != self.epoch:
            raise EpochError(f"event seq {event.seq} has epoch {event.epoch!r}, not {self.epoch!r}")
        if event.seq <= self.last_seq:
            self.duplicates_dropped += 1
            return False
        if event.seq != self.last_seq + 1:
            raise GapError(f"gap: expected seq {self.last_seq + 1}, got {event.seq}")
        self.epoch = event.epoch
        self.last_seq = event.seq
        self.head_seq = max(self.head_seq, event.seq)
        self.events.append(event)
        self._fold_text(event)
        return True

    def _fold_text(self, event: EventFrame) -> None:
        message_id = event.data.get("message_id")
        if not isinstance(message_id, str):
            return
        if event.event == "text.delta":
            delta = event.data.get("delta")
            if isinstance(delta, str):
                self._parts(message_id).append(delta)
        elif event.event == "message.assistant":
            content = event.data.get("content")
            if isinstance(content, str):
                self._set_text(message_id, [content])

    def _parts(self, message_id: str) -> list[str]:
        parts = self._texts.get(message_id)
        return parts if parts is not None else self._set_text(message_id, [])

    def _set_text(self, message_id: str, parts: list[str]) -> list[str]:
        if message_id not in self._texts and len(self._texts) >= self._max_texts:
            self._texts.popitem(last=False)
        self._texts[message_id] = parts
        return parts
