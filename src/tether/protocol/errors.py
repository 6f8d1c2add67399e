"""The one table of error codes and close codes (DESIGN §3), and the protocol error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """``error.code`` values; each maps to one HTTP status for REST."""

    BAD_FRAME = "bad_frame"
    INVALID = "invalid"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    BUSY = "busy"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.INVALID: 422,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.QUOTA_EXCEEDED: 429,
    ErrorCode.BUSY: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INTERNAL: 500,
}


class CloseCode(IntEnum):
    """WebSocket close codes and what the client should do about them."""

    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 4008
    BAD_HELLO = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    HELLO_TIMEOUT = 4408


class ClientAction(StrEnum):
    RESUME = "resume"
    STOP = "stop"
    BACKOFF = "backoff"


CLOSE_ACTIONS: dict[int, ClientAction] = {
    CloseCode.GOING_AWAY: ClientAction.RESUME,
    CloseCode.SERVICE_RESTART: ClientAction.RESUME,
    CloseCode.POLICY_VIOLATION: ClientAction.STOP,
    CloseCode.TOO_BIG: ClientAction.STOP,
    CloseCode.INTERNAL_ERROR: ClientAction.BACKOFF,
    CloseCode.TRY_AGAIN_LATER: ClientAction.BACKOFF,
    CloseCode.SLOW_CONSUMER: ClientAction.RESUME,
    CloseCode.BAD_HELLO: ClientAction.STOP,
    CloseCode.UNAUTHENTICATED: ClientAction.STOP,
    CloseCode.FORBIDDEN: ClientAction.STOP,
    CloseCode.NOT_FOUND: ClientAction.STOP,
    CloseCode.HELLO_TIMEOUT: ClientAction.RESUME,
}


def close_action(code: int) -> ClientAction:
    """What a client does after a close with ``code``; unknown codes back off and retry."""
    return CLOSE_ACTIONS.get(code, ClientAction.BACKOFF)


@dataclass(eq=False)
class ProtocolError(Exception):
    """A typed failure that becomes an ``error`` frame on the socket or a problem on REST."""

    code: ErrorCode
    message: str
    command_id: str | None = None
    retry_after_ms: int | None = None
    details: list[dict[str, Any]] | dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.message}")

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]
