"""The default adapter: a pydantic-ai ``Agent`` behind tether's runner interface.

- The message history (``ModelMessagesTypeAdapter`` JSON) is the checkpoint.
- A run that needs a person ends with ``DeferredToolRequests``: it becomes ``Paused``, and
  resuming is a new agent call with that history and ``DeferredToolResults``.
- Tools wrapped with ``tether_tool`` log ``tool.started`` durably, with a checkpoint, before
  their body runs, and ``tool.finished`` after: a crash mid-tool is detectable and the
  call can be re-run only if a person says so, or replayed from its recorded output.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

import pydantic_core
import structlog
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, RunContext
from pydantic_ai.exceptions import (
    AgentRunError,
    ApprovalRequired,
    ModelHTTPError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
)
from pydantic_ai.tools import ToolApproved, ToolDenied

from tether.agents.runner import (
    AgentEvent,
    AgentFailed,
    Answer,
    AssistantMessage,
    Finished,
    HumanRequest,
    Paused,
    RunInput,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from tether.store.contract import new_id

if TYPE_CHECKING:
    from tether.workspace.service import WorkspaceService

log = structlog.get_logger(__name__)
MAX_TOOL_OUTPUT_CHARS = 16_000
MAX_LOGGED_STRING_CHARS = 2_000
COMMIT_TIMEOUT_S = 30.0
QUEUE_ITEMS = 256
DENIED = "The person denied this tool call."
PERSON_APPROVED = "tether_person_approved"

P = ParamSpec("P")
R = TypeVar("R")


def jsonable(value: Any) -> Any:
    """A JSON-safe, size-capped copy of a tool's arguments or output for the log. Long
    strings are cut first, so arguments stay an object; only if that is not enough is the
    whole value replaced by a preview (``{"truncated": …}`` for an object)."""
    plain = pydantic_core.from_json(pydantic_core.to_json(value, fallback=str))
    if len(pydantic_core.to_json(plain)) <= MAX_TOOL_OUTPUT_CHARS:
        return plain
    capped = _cap_strings(plain)
    text = pydantic_core.to_json(capped).decode()
    if len(text) <= MAX_TOOL_OUTPUT_CHARS:
        return capped
    preview = text[:MAX_TOOL_OUTPUT_CHARS] + "…"
    return {"truncated": preview} if isinstance(plain, dict) else preview


def _cap_strings(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_LOGGED_STRING_CHARS:
        return value[:MAX_LOGGED_STRING_CHARS] + f"… ({len(value)} chars)"
    if isinstance(value, dict):
        return {key: _cap_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cap_strings(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class ToolDeps:
    """What tether gives the tools of a run (``RunContext.deps``)."""

    run: RunInput
    emit: Callable[[AgentEvent], Awaitable[None]]
    workspace: WorkspaceService | None = None


class ToolError(Exception):
    """A tool's expected failure (``conflict``, ``invalid``, ...): logged as ``tool.finished``
    with ``ok: false`` and handed to the model as the tool's result, so the run goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def result(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def needs_approval(ctx: RunContext[Any]) -> bool:
    """The running tool was declared ``requires_approval=True``."""
    tools = ctx.tool_manager.tools if ctx.tool_manager is not None else None
    tool = tools.get(ctx.tool_name or "") if tools else None
    return tool is not None and tool.tool_def.kind == "unapproved"


def tether_tool(
    fn: Callable[Concatenate[RunContext[ToolDeps], P], Awaitable[R]],
) -> Callable[Concatenate[RunContext[ToolDeps], P], Awaitable[R]]:
    """Make a tool visible and crash-safe: ``tool.started`` and a checkpoint are committed
    before the body runs; ``tool.finished`` follows with the output or the error. A tool
    that requires approval runs only with a person's approval: resuming after a crash
    grants ``approved`` to calls that never started (pydantic-ai needs a result for each),
    and such a call asks again instead of running."""

    @functools.wraps(fn)
    async def wrapper(ctx: RunContext[ToolDeps], *args: P.args, **kwargs: P.kwargs) -> R:
        if needs_approval(ctx) and not approved_by_person(ctx):
            raise ApprovalRequired()  # crash recovery's grant is not a person's approval
        call_id = ctx.tool_call_id or new_id("call")
        name = ctx.tool_name or fn.__name__
        checkpoint = ModelMessagesTypeAdapter.dump_json(ctx.messages).decode()
        committed = asyncio.get_running_loop().create_future()
        started = ToolStarted(call_id, name, jsonable(kwargs), checkpoint, committed)
        await ctx.deps.emit(started)
        async with asyncio.timeout(COMMIT_TIMEOUT_S):
            await committed
        try:
            result = await fn(ctx, *args, **kwargs)
        except ToolError as exc:
            await ctx.deps.emit(ToolFinished(call_id, name, False, error=str(exc)))
            return cast(R, exc.result())
        except Exception as exc:
            await ctx.deps.emit(ToolFinished(call_id, name, False, error=str(exc)))
            raise
        await ctx.deps.emit(ToolFinished(call_id, name, True, jsonable(result)))
        return result

    return cast(Callable[Concatenate[RunContext[ToolDeps], P], Awaitable[R]], wrapper)


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
    return []


def _requests(deferred: DeferredToolRequests) -> list[HumanRequest]:
    requests = []
    for call in deferred.approvals:
        meta = deferred.metadata.get(call.tool_call_id) or {}
        details = meta.get("details")
        requests.append(
            HumanRequest(
                call.tool_call_id,
                "approval",
                call.tool_name,
                call.args_as_dict(),
                str(meta.get("prompt") or f"Allow {call.tool_name} to run with these arguments?"),
                details=details if isinstance(details, dict) else None,
            )
        )
    for call in deferred.calls:
        meta = deferred.metadata.get(call.tool_call_id, {})
        choices = meta.get("choices")
        requests.append(
            HumanRequest(
                call.tool_call_id,
                "question",
                call.tool_name,
                call.args_as_dict(),
                str(meta.get("prompt") or "The agent has a question."),
                [str(c) for c in choices] if choices else None,
                meta.get("timeout_s"),
            )
        )
    return requests


def approved_by_person(ctx: RunContext[Any]) -> bool:
    """The call was approved by a person (an answered interrupt). Crash recovery grants
    ``approved`` to calls that never started; a tool that must have a person's approval
    asks again rather than trust that."""
    meta = ctx.tool_call_metadata
    return ctx.tool_call_approved and isinstance(meta, dict) and meta.get(PERSON_APPROVED) is True


def results_for(answers: list[Answer]) -> DeferredToolResults:
    """Answers from people (or recorded outputs) as pydantic-ai deferred results."""
    results = DeferredToolResults()
    for answer in answers:
        if answer.replay:
            results.calls[answer.call_id] = answer.output
        elif answer.approved is not None:
            results.approvals[answer.call_id] = (
                ToolApproved() if answer.approved else ToolDenied(answer.note or DENIED)
            )
            if answer.approved and answer.by_person:
                results.metadata[answer.call_id] = {PERSON_APPROVED: True}
        else:
            results.calls[answer.call_id] = answer.answer or ""
    return results


def pending_calls(checkpoint: str) -> list[ToolCallPart]:
    """Tool calls of the checkpoint's last model response (the ones a resume settles)."""
    messages = ModelMessagesTypeAdapter.validate_json(checkpoint)
    last = messages[-1] if messages else None
    if not isinstance(last, ModelResponse):
        return []
    return [part for part in last.parts if isinstance(part, ToolCallPart)]


@dataclass(frozen=True, slots=True)
class _Done:
    final: AgentEvent | None = None
    error: BaseException | None = None


def _usage(stream_usage: Any) -> dict[str, int]:
    return {
        "input_tokens": stream_usage.input_tokens,
        "output_tokens": stream_usage.output_tokens,
        "requests": stream_usage.requests,
    }


def _failure(exc: BaseException) -> AgentFailed:
    if isinstance(exc, AgentFailed):
        return exc
    if isinstance(exc, ModelHTTPError | UnexpectedModelBehavior | AgentRunError):
        return AgentFailed("model_error", str(exc), retryable=True)
    return AgentFailed("agent_error", f"{type(exc).__name__}: {exc}")


class PydanticAIRunner:
    """Runs a pydantic-ai agent whose output may be ``DeferredToolRequests``."""

    def __init__(
        self,
        agent: Agent[ToolDeps, str | DeferredToolRequests],
        workspace: WorkspaceService | None = None,
    ) -> None:
        self._agent = agent
        self._workspace = workspace

    def start(self, run: RunInput) -> AsyncIterator[AgentEvent]:
        history = ModelMessagesTypeAdapter.validate_json(run.history) if run.history else None
        return self._events(run, run.prompt, history, None)

    def resume(self, run: RunInput) -> AsyncIterator[AgentEvent]:
        if run.checkpoint is None:
            raise ValueError("resume needs a checkpoint")
        history = ModelMessagesTypeAdapter.validate_json(run.checkpoint)
        return self._events(run, None, history, results_for(run.answers))

    def pending_calls(self, checkpoint: str) -> list[str]:
        return [part.tool_call_id for part in pending_calls(checkpoint)]

    async def _events(
        self,
        run: RunInput,
        prompt: str | None,
        history: list[ModelMessage] | None,
        results: DeferredToolResults | None,
    ) -> AsyncIterator[AgentEvent]:
        queue: asyncio.Queue[AgentEvent | _Done] = asyncio.Queue(maxsize=QUEUE_ITEMS)
        deps = ToolDeps(run, queue.put, self._workspace)
        task = asyncio.create_task(self._drive(run, prompt, history, results, deps, queue))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Done):
                    if item.error is not None:
                        raise _failure(item.error) from item.error
                    if item.final is not None:
                        yield item.final
                    return
                yield item
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drive(
        self,
        run: RunInput,
        prompt: str | None,
        history: list[ModelMessage] | None,
        results: DeferredToolResults | None,
        deps: ToolDeps,
        queue: asyncio.Queue[AgentEvent | _Done],
    ) -> None:
        parts = _TextParts()
        try:
            async with self._agent.run_stream_events(
                prompt,
                message_history=history,
                deferred_tool_results=results,
                deps=deps,
                conversation_id=run.session_id,
                instructions=f"tether attempt {run.attempt}",
            ) as stream:
                async for event in stream:
                    for mapped in _map(event, parts):
                        await queue.put(mapped)
                output = stream.result.output if stream.result else None
                checkpoint = ModelMessagesTypeAdapter.dump_json(stream.all_messages()).decode()
                usage = _usage(stream.usage)
        except Exception as exc:
            await queue.put(_Done(error=exc))
            return
        if isinstance(output, DeferredToolRequests):
            await queue.put(_Done(Paused(checkpoint, _requests(output), usage)))
        else:
            await queue.put(_Done(Finished(checkpoint, usage)))
