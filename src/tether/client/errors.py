"""The client's exceptions: every transport failure reaches the caller as one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.protocol.frames import ErrorFrame, EventFrame


class TetherError(Exception):
    """Base of every error raised by ``tether.client``."""


@dataclass(eq=False)
class TetherClosed(TetherError):
    """The server closed the socket with a code that says: do not come back (DESIGN §3)."""

    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        super().__init__(f"connection closed for good: {self.code} {self.reason}".rstrip())


@dataclass(eq=False)
class ConnectError(TetherError):
    """The client could not (re)connect: refused, timed out, or out of attempts."""

    message: str
    attempts: int = 1
    code: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)


class ClientClosedError(TetherError):
    """The client was closed by its owner; nothing more can be sent or received."""


@dataclass(eq=False)
class CommandError(TetherError):
    """The server answered a command with an ``error`` frame."""

    code: str
    message: str
    command_id: str | None = None
    retry_after_ms: int | None = None
    details: list[dict[str, Any]] | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")

    @classmethod
    def from_frame(cls, frame: ErrorFrame) -> CommandError:
        return cls(
            code=str(frame.code),
            message=frame.message,
            command_id=frame.id,
            retry_after_ms=frame.retry_after_ms,
            details=frame.details,
        )


@dataclass(eq=False)
class StreamError(TetherError):
    """An event cannot be applied in order; the client must resume from its cursor.

    ``applied`` holds the events of the same frame that were applied before the bad one,
    so a caller can still deliver them.
    """

    message: str
    applied: list[EventFrame] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)


class GapError(StreamError):
    """An event's ``seq`` skipped past ``last_seq + 1``: a server bug, never applied."""


class EpochError(StreamError):
    """An event belongs to another epoch than the one the welcome announced."""
