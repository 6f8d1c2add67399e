"""Buses carry committed events between instances; the log, not the bus, is the truth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tether.bus.local import Deliver, LocalBus
from tether.store.contract import EventRecord


class Bus(Protocol):
    async def start(self, deliver: Deliver) -> None: ...
    def publish(self, events: Sequence[EventRecord]) -> None: ...
    async def close(self) -> None: ...


def open_bus(url: str) -> Bus:
    """A bus for ``url``. Only ``local`` exists so far; others fail loudly, never silently."""
    if url == "local":
        return LocalBus()
    raise ValueError(f"unsupported bus URL {url!r}: this build supports only 'local'")


__all__ = ["Bus", "LocalBus", "open_bus"]
