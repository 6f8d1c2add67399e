"""Commands sent but not answered yet, by id: what a reconnect must re-send."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tether.client.errors import TetherError
from tether.protocol.frames import AckFrame, PongFrame

Answer = AckFrame | PongFrame


@dataclass(slots=True)
class Pending:
    text: str
    future: asyncio.Future[Answer]


class PendingCommands:
    """Each entry has exactly one waiter, which removes it when it stops waiting.

    So the table is bounded by the number of concurrent waiters and an answer that
    arrives after its waiter gave up is simply ignored.
    """

    def __init__(self) -> None:
        self._items: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: str, text: str) -> Pending:
        if key in self._items:
            raise ValueError(f"command {key!r} is already waiting for its answer")
        pending = Pending(text, asyncio.get_running_loop().create_future())
        self._items[key] = pending
        return pending

    def remove(self, key: str, pending: Pending) -> None:
        if self._items.get(key) is pending:
            del self._items[key]

    def texts(self) -> list[str]:
        """The frames to re-send on a new connection, oldest first."""
        return [pending.text for pending in self._items.values()]

    def resolve(self, key: str, answer: Answer) -> bool:
        pending = self._items.get(key)
        if pending is None or pending.future.done():
            return False
        pending.future.set_result(answer)
        return True

    def reject(self, key: str, error: BaseException) -> bool:
        pending = self._items.get(key)
        if pending is None or pending.future.done():
            return False
        pending.future.set_exception(error)
        return True

    def fail_all(self, error: TetherError) -> None:
        for key in list(self._items):
            self.reject(key, error)
