"""Runner output → log events: translation, delta coalescing, and the producer task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from tether.agents.runner import (
    AgentEvent,
    AssistantMessage,
    Progress,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from tether.protocol.events import (
    EventKind,
    MessageAssistantData,
    ProgressData,
    TextDeltaData,
    ToolFinishedData,
    ToolStartedData,
)
from tether.store.contract import NewEvent


@dataclass(frozen=True, slots=True)
class End:
    """The runner's stream ended (``error`` set when it raised)."""

    error: BaseException | None = None


def to_new_event(event: AgentEvent, run_id: str) -> NewEvent | None:
    """The log event a runner event becomes (``Finished`` and ``Paused`` become none)."""
    match event:
        case TextDelta(message_id, delta):
            data = TextDeltaData(message_id=message_id, delta=delta).dump()
            return NewEvent(EventKind.TEXT_DELTA, data, run_id)
        case AssistantMessage(message_id, content):
            data = MessageAssistantData(message_id=message_id, content=content).dump()
            return NewEvent(EventKind.MESSAGE_ASSISTANT, data, run_id)
        case ToolStarted(call_id=call_id, tool=tool, args=args):
            data = ToolStartedData(call_id=call_id, tool=tool, args=args).dump()
            return NewEvent(EventKind.TOOL_STARTED, data, run_id)
        case ToolFinished(call_id, tool, ok, output, error):
            finished = ToolFinishedData(
                call_id=call_id, tool=tool, ok=ok, output=output, error=error
            )
            return NewEvent(EventKind.TOOL_FINISHED, finished.dump(), run_id)
        case Progress(label, done, total):
            data = ProgressData(label=label, done=done, total=total).dump()
            return NewEvent(EventKind.PROGRESS, data, run_id)
    return None


def coalesce(events: Sequence[AgentEvent]) -> list[AgentEvent]:
    """Merge consecutive text deltas of one message into one delta."""
    merged: list[AgentEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, TextDelta)
            and isinstance(last, TextDelta)
            and last.message_id == event.message_id
        ):
            merged[-1] = TextDelta(event.message_id, last.delta + event.delta)
            continue
        merged.append(event)
    return merged


def barriers(events: Sequence[AgentEvent]) -> list[ToolStarted]:
    """Tool starts whose runner waits until they are durable."""
    return [e for e in events if isinstance(e, ToolStarted) and e.committed is not None]


def release(started: list[ToolStarted], error: BaseException | None = None) -> None:
    for event in started:
        if event.committed is not None and not event.committed.done():
            if error is None:
                event.committed.set_result(None)
            else:
                event.committed.set_exception(error)


async def produce(
    stream: AsyncIterator[AgentEvent], queue: asyncio.Queue[AgentEvent | End]
) -> None:
    """Copy the runner's stream into ``queue`` (bounded: backpressure on the agent)."""
    try:
        async for event in stream:
            await queue.put(event)
        await queue.put(End())
    except Exception as exc:
        await queue.put(End(exc))
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
