"""The runner interface: how the server sees an agent, whatever framework is behind it.

A runner turns a ``RunInput`` into an async stream of ``AgentEvent``s ending with
``Finished`` (or raising ``AgentFailed``). Cancelling is closing the stream: the server
cancels the task that iterates it. The checkpoint is JSON the runner can resume from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TextDelta:
    message_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    message_id: str
    content: str


@dataclass(frozen=True, slots=True)
class ToolStarted:
    call_id: str
    tool: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolFinished:
    call_id: str
    tool: str
    ok: bool
    output: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    label: str
    done: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    checkpoint: str | None
    usage: dict[str, int] = field(default_factory=dict)


AgentEvent = TextDelta | AssistantMessage | ToolStarted | ToolFinished | Progress | Finished


class AgentFailed(Exception):
    """The agent could not finish; becomes ``run.failed`` with this code and message."""

    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class RunInput:
    run_id: str
    session_id: str
    prompt: str
    history: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    def start(self, run: RunInput) -> AsyncIterator[AgentEvent]: ...
