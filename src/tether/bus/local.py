"""The ``local`` bus: one process, so publishing is handing events to this process's hub."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tether.store.contract import EventRecord

Deliver = Callable[[Sequence[EventRecord]], None]


class LocalBus:
    """Publishes synchronously to the local deliver callback; never blocks."""

    def __init__(self) -> None:
        self._deliver: Deliver = lambda events: None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def publish(self, events: Sequence[EventRecord]) -> None:
        self._deliver(events)

    async def close(self) -> None:
        self._deliver = lambda events: None
