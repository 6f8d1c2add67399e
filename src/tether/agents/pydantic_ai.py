"""The default adapter: a pydantic-ai ``Agent`` behind tether's runner interface.

The message history (``ModelMessagesTypeAdapter`` JSON) is the checkpoint; the next run of
the session continues from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pydantic_core
import structlog
from pydantic_ai import Agent
from pydantic_ai.exceptions import AgentRunError, ModelHTTPError, UnexpectedModelBehavior
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessagesTypeAdapter,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)

from tether.agents.runner import (
    AgentEvent,
    AgentFailed,
    AssistantMessage,
    Finished,
    RunInput,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from tether.store.contract import new_id

log = structlog.get_logger(__name__)
MAX_TOOL_OUTPUT_CHARS = 16_000


def _jsonable(value: Any) -> Any:
    text = pydantic_core.to_json(value, fallback=str).decode()
    if len(text) > MAX_TOOL_OUTPUT_CHARS:
        return text[:MAX_TOOL_OUTPUT_CHARS] + "…"
    return pydantic_core.from_json(text)


class _TextParts:
    """Gives each text part of the model's replies its own ``message_id``."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}

    def start(self, index: int, content: str) -> list[AgentEvent]:
        self._ids[index] = new_id("m")
        return [TextDelta(self._ids[index], content)] if content else []

    def delta(self, index: int, content: str) -> list[AgentEvent]:
        if index not in self._ids:
            return self.start(index, content)
        return [TextDelta(self._ids[index], content)] if content else []

    def end(self, index: int, content: str) -> list[AgentEvent]:
        message_id = self._ids.pop(index, None) or new_id("m")
        return [AssistantMessage(message_id, content)]


def _map(event: object, parts: _TextParts) -> list[AgentEvent]:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return parts.start(event.index, event.part.content)
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return parts.delta(event.index, event.delta.content_delta)
    if isinstance(event, PartEndEvent) and isinstance(event.part, TextPart):
        return parts.end(event.index, event.part.content)
    if isinstance(event, FunctionToolCallEvent):
        part = event.part
        return [ToolStarted(part.tool_call_id, part.tool_name, part.args_as_dict())]
    if isinstance(event, FunctionToolResultEvent):
        result = event.part
        ok = getattr(result, "outcome", "success") == "success"
        output = _jsonable(result.content)
        return [ToolFinished(result.tool_call_id, result.tool_name, ok, output)]
    return []


class PydanticAIRunner:
    def __init__(self, agent: Agent[Any, str]) -> None:
        self._agent = agent

    async def start(self, run: RunInput) -> AsyncIterator[AgentEvent]:
        history = ModelMessagesTypeAdapter.validate_json(run.history) if run.history else None
        parts = _TextParts()
        try:
            async with self._agent.run_stream_events(
                run.prompt, message_history=history, conversation_id=run.session_id
            ) as stream:
                async for event in stream:
                    for mapped in _map(event, parts):
                        yield mapped
                messages = stream.all_messages()
                usage = stream.usage
        except (ModelHTTPError, UnexpectedModelBehavior, AgentRunError) as exc:
            raise AgentFailed("model_error", str(exc), retryable=True) from exc
        except AgentFailed:
            raise
        except Exception as exc:
            raise AgentFailed("agent_error", f"{type(exc).__name__}: {exc}") from exc
        checkpoint = ModelMessagesTypeAdapter.dump_json(messages).decode()
        yield Finished(
            checkpoint,
            {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "requests": usage.requests,
            },
        )
