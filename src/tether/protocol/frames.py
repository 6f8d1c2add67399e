"""Protocol v1 frames (DESIGN §3) as pydantic models with discriminated unions.

Client frames are validated once, by the codec; server frames are built by the server
and serialized with ``encode``. No I/O here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tether.protocol.errors import ErrorCode

Policy = Literal["enqueue", "reject", "interrupt"]
CommandId = Annotated[str, Field(min_length=1, max_length=256)]
JsonObject = dict[str, Any]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- client → server


class Cursor(_Frame):
    epoch: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)


class CreateSpec(_Frame):
    title: str | None = None
    agent: str | None = Field(default=None, min_length=1, max_length=64)
    metadata: JsonObject | None = None
    policy: Policy | None = None


class HelloFrame(_Frame):
    type: Literal["hello"]
    token: str | None = Field(default=None, max_length=8192)
    session_id: str | None = Field(default=None, min_length=1, max_length=64)
    resume: Cursor | None = None
    create: CreateSpec | None = None


class MessageFrame(_Frame):
    type: Literal["message"]
    id: CommandId
    content: str = Field(min_length=1)
    policy: Policy | None = None


class RespondFrame(_Frame):
    type: Literal["respond"]
    id: CommandId
    interrupt_id: str = Field(min_length=1, max_length=64)
    approved: bool | None = None
    answer: str | None = None
    note: str | None = Field(default=None, max_length=10_000)


class CancelFrame(_Frame):
    type: Literal["cancel"]
    id: CommandId
    run_id: str | None = Field(default=None, min_length=1, max_length=64)


class RetryFrame(_Frame):
    type: Literal["retry"]
    id: CommandId
    run_id: str | None = Field(default=None, min_length=1, max_length=64)


class PingFrame(_Frame):
    type: Literal["ping"]
    t: float | int | str | None = None


ClientFrame = Annotated[
    HelloFrame | MessageFrame | RespondFrame | CancelFrame | RetryFrame | PingFrame,
    Field(discriminator="type"),
]
CommandFrame = MessageFrame | RespondFrame | CancelFrame | RetryFrame
CLIENT_TYPES = frozenset({"hello", "message", "respond", "cancel", "retry", "ping"})


# ---------------------------------------------------------------- server → client


class Limits(_Frame):
    max_frame_bytes: int
    max_message_chars: int
    max_command_id_chars: int
    hello_timeout_s: float


class WelcomeFrame(_Frame):
    type: Literal["welcome"] = "welcome"
    session_id: str
    epoch: str
    head_seq: int
    recovered: bool
    user: str
    server_id: str
    limits: Limits


class SnapshotFrame(_Frame):
    type: Literal["snapshot"] = "snapshot"
    as_of_seq: int
    session: JsonObject
    messages: list[JsonObject]
    runs: list[JsonObject]
    interrupts: list[JsonObject]
    tools: list[JsonObject] = Field(default_factory=list)
    history_before: int | None = None  # set when older messages are only in the log


class AckFrame(_Frame):
    type: Literal["ack"] = "ack"
    id: str
    duplicate: bool = False
    result: JsonObject | None = None


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    id: str | None = None
    retry_after_ms: int | None = None
    details: list[JsonObject] | JsonObject | None = None


class PongFrame(_Frame):
    type: Literal["pong"] = "pong"
    t: float | int | str | None = None


class EventFrame(_Frame):
    """One logged event; ``seq`` is gapless per session within one ``epoch``."""

    type: Literal["event"] = "event"
    seq: int
    epoch: str
    ts: str
    session_id: str
    run_id: str | None = None
    event: str
    data: JsonObject


class EventsFrame(_Frame):
    """Consecutive events in one frame (replay)."""

    type: Literal["events"] = "events"
    events: list[EventFrame]


ServerFrame = Annotated[
    WelcomeFrame | SnapshotFrame | AckFrame | ErrorFrame | PongFrame | EventFrame | EventsFrame,
    Field(discriminator="type"),
]
