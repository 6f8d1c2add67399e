"""Logged event kinds and the shape of each one's ``data`` (DESIGN §3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tether.protocol.frames import Policy


class EventKind(StrEnum):
    SESSION_CREATED = "session.created"
    SESSION_UPDATED = "session.updated"
    MESSAGE_USER = "message.user"
    RUN_QUEUED = "run.queued"
    RUN_STARTED = "run.started"
    TEXT_DELTA = "text.delta"
    MESSAGE_ASSISTANT = "message.assistant"
    TOOL_STARTED = "tool.started"
    TOOL_FINISHED = "tool.finished"
    INTERRUPT_REQUESTED = "interrupt.requested"
    INTERRUPT_RESOLVED = "interrupt.resolved"
    PROGRESS = "progress"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    RUN_INTERRUPTED = "run.interrupted"


RUN_TERMINAL_EVENTS = frozenset(
    {EventKind.RUN_COMPLETED, EventKind.RUN_FAILED, EventKind.RUN_CANCELLED}
)


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class SessionData(EventData):
    title: str
    agent: str
    metadata: dict[str, Any]
    policy: Policy


class MessageUserData(EventData):
    message_id: str
    content: str
    command_id: str


class RunStateData(EventData):
    run_id: str
    message_id: str
    attempt: int
    position: int | None = None
    resumed: bool | None = None


class TextDeltaData(EventData):
    message_id: str
    delta: str


class MessageAssistantData(EventData):
    message_id: str
    content: str


class ToolStartedData(EventData):
    call_id: str
    tool: str
    args: dict[str, Any]


class ToolFinishedData(EventData):
    call_id: str
    tool: str
    ok: bool
    output: Any = None
    error: str | None = None


class InterruptRequestedData(EventData):
    interrupt_id: str
    kind: Literal["approval", "question"]
    call_id: str | None = None
    tool: str | None = None
    args: dict[str, Any] | None = None
    prompt: str
    choices: list[str] | None = None
    expires_at: str | None = None
    on_timeout: str
    details: dict[str, Any] | None = None


class InterruptResolvedData(EventData):
    interrupt_id: str
    outcome: str
    answer: str | None = None
    note: str | None = None
    by: str


class ProgressData(EventData):
    label: str
    done: int | None = None
    total: int | None = None


class RunCompletedData(EventData):
    usage: dict[str, int] | None = None


class ErrorInfo(EventData):
    code: str
    message: str


class RunFailedData(EventData):
    error: ErrorInfo
    retryable: bool


class RunCancelledData(EventData):
    by: str


class RunInterruptedData(EventData):
    reason: str


EVENT_DATA: dict[EventKind, type[EventData]] = {
    EventKind.SESSION_CREATED: SessionData,
    EventKind.SESSION_UPDATED: SessionData,
    EventKind.MESSAGE_USER: MessageUserData,
    EventKind.RUN_QUEUED: RunStateData,
    EventKind.RUN_STARTED: RunStateData,
    EventKind.TEXT_DELTA: TextDeltaData,
    EventKind.MESSAGE_ASSISTANT: MessageAssistantData,
    EventKind.TOOL_STARTED: ToolStartedData,
    EventKind.TOOL_FINISHED: ToolFinishedData,
    EventKind.INTERRUPT_REQUESTED: InterruptRequestedData,
    EventKind.INTERRUPT_RESOLVED: InterruptResolvedData,
    EventKind.PROGRESS: ProgressData,
    EventKind.RUN_COMPLETED: RunCompletedData,
    EventKind.RUN_FAILED: RunFailedData,
    EventKind.RUN_CANCELLED: RunCancelledData,
    EventKind.RUN_INTERRUPTED: RunInterruptedData,
}
