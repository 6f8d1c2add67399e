"""The runner interface: how the server sees an agent, whatever framework is behind it.

A runner turns a ``RunInput`` into an async stream of ``AgentEvent``s ending with
``Finished`` (or raising ``AgentFailed``). Cancelling is closing the stream: the server
cancels the task that iterates it. The checkpoint is JSON the runner can resume from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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
    """A tool is about to run. With ``committed``, the runner waits for that future: the
    server resolves it once ``tool.started`` (and ``checkpoint``) are durable, so a crash
    mid-tool is always detectable and resumable (guarantee 6)."""

    call_id: str
    tool: str
    args: dict[str, Any]
    checkpoint: str | None = None
    committed: asyncio.Future[None] | None = field(default=None, compare=False, repr=False)


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


@dataclass(frozen=True, slots=True)
class HumanRequest:
    """One thing the run needs from a person: approve a tool call, or answer a question."""

    call_id: str
    kind: Literal["approval", "question"]
    tool: str
    args: dict[str, Any]
    prompt: str
    choices: list[str] | None = None
    timeout_s: float | None = None
    details: dict[str, Any] | None = None  # e.g. {"path", "diff"} for a file edit


@dataclass(frozen=True, slots=True)
class Paused:
    """The run needs a person: it ends here and resumes from ``checkpoint`` with answers."""

    checkpoint: str
    requests: list[HumanRequest]
    usage: dict[str, int] = field(default_factory=dict)


AgentEvent = (
    TextDelta | AssistantMessage | ToolStarted | ToolFinished | Progress | Finished | Paused
)


@dataclass(frozen=True, slots=True)
class Answer:
    """How a pending call is settled when the run resumes.

    ``approved`` for approvals (``False`` is a denial the agent sees, with ``note``),
    ``answer`` for questions, ``output`` to replay a result recorded before a crash.
    """

    call_id: str
    approved: bool | None = None
    answer: str | None = None
    note: str | None = None
    output: Any = None
    replay: bool = False
    by_person: bool = False  # an approval a person gave, not one granted by crash recovery


class AgentFailed(Exception):
    """The agent could not finish; becomes ``run.failed`` with this code and message."""

    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


MetadataUpdate = Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunInput:
    """What a runner gets. ``checkpoint`` + ``answers`` mean: resume, do not start over."""

    run_id: str
    session_id: str
    prompt: str
    history: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    checkpoint: str | None = None
    answers: list[Answer] = field(default_factory=list)
    update_metadata: MetadataUpdate | None = None


class Runner(Protocol):
    def start(self, run: RunInput) -> AsyncIterator[AgentEvent]: ...

    def resume(self, run: RunInput) -> AsyncIterator[AgentEvent]: ...

    def pending_calls(self, checkpoint: str) -> list[str]:
        """Ids of the tool calls a resume from ``checkpoint`` settles."""
        ...
