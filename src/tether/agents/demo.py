"""The ``demo`` agent: a pydantic-ai agent driven by a scripted offline model.

Commands (the last user message):
  ``/stream N [delay_ms]``        a reply of N tokens ``t1 t2 … tN`` (N ≤ 100,000)
  ``/fail [text]``                streams one token, then the run fails with ``text``
  ``/flaky``                      fails on the first attempt, succeeds when retried
  ``/approve [text]``             calls ``demo_note`` (needs approval): appends ``text`` to the
                                  session's ``metadata.notes``, a side effect tests can count
  ``/approve_slow MS [text]``     the same, but the tool works for MS ms before writing
  ``/ask [free] [timeout_s]``     asks a question (with choices, or free text), optionally
                                  with a deadline (on timeout the run fails)
  ``where is X``, ``show me the layout``, ``change A to B in F``, ...
                                  the workspace tools (see ``workspace_demo``)
  anything else                   a short streamed reply that quotes the message
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pydantic_ai import Agent, DeferredToolRequests, RunContext, Tool
from pydantic_ai.exceptions import CallDeferred
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from tether.agents import workspace_demo
from tether.agents.pydantic_ai import PydanticAIRunner, ToolDeps, tether_tool
from tether.agents.runner import AgentFailed
from tether.agents.workspace_tools import workspace_tools
from tether.workspace.service import WorkspaceService

MAX_STREAM_TOKENS = 100_000
MAX_DELAY_MS = 60_000
QUOTE_DELAY_MS = 15
COLOURS = ["red", "green", "blue"]


@dataclass(frozen=True, slots=True)
class Script:
    tokens: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    fail: str | None = None
    tool: str | None = None
    args: dict[str, object] = field(default_factory=dict)


def last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def attempt_of(messages: list[ModelMessage]) -> int:
    for message in reversed(messages):
        if isinstance(message, ModelRequest) and message.instructions:
            found = re.search(r"tether attempt (\d+)", message.instructions)
            if found:
                return int(found.group(1))
    return 1


def _int(text: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(text)))
    except ValueError:
        return default


def _words(tokens: str) -> list[str]:
    return [w if i == 0 else f" {w}" for i, w in enumerate(tokens.split(" "))]


def _stream(args: list[str]) -> Script:
    count = _int(args[0], 10, 1, MAX_STREAM_TOKENS) if args else 10
    delay_ms = _int(args[1], 0, 0, MAX_DELAY_MS) if len(args) > 1 else 0
    return Script([f"t{i}" if i == 1 else f" t{i}" for i in range(1, count + 1)], delay_ms / 1000)


def _ask(args: list[str]) -> Script:
    free = bool(args) and args[0] == "free"
    rest = args[1:] if free else args
    timeout = _int(rest[0], 0, 0, 86_400) if rest else 0
    prompt = "What should I call this session?" if free else "Which colour should I use?"
    call: dict[str, object] = {"prompt": prompt, "choices": None if free else COLOURS}
    if timeout:
        call["timeout_s"] = timeout
    return Script(tool="ask_user", args=call)


def plan(prompt: str, attempt: int = 1) -> Script:
    """What the demo model says to ``prompt``: pure, so tests can check it directly."""
    step = workspace_demo.plan_prompt(prompt)
    if step is not None:
        return Script(tool=step.tool, args=step.args)
    command, *args = prompt.strip().split(" ") if prompt.strip() else [""]
    args = [a for a in args if a]
    if command == "/stream":
        return _stream(args)
    if command == "/fail":
        return Script(["Working on it…"], fail=" ".join(args) or "the demo agent failed on request")
    if command == "/flaky":
        if attempt == 1:
            return Script(["Trying…"], fail="flaky: this fails on the first attempt")
        return Script(_words(f"Succeeded on attempt {attempt}."))
    if command == "/approve":
        return Script(tool="demo_note", args={"text": " ".join(args) or "hello"})
    if command == "/approve_slow":
        delay = _int(args[0], 1000, 0, MAX_DELAY_MS) if args else 1000
        return Script(
            tool="demo_note", args={"text": " ".join(args[1:]) or "slow", "delay_ms": delay}
        )
    if command == "/ask":
        return _ask(args)
    reply = f'You said: "{prompt.strip()[:500]}". Try /stream 50 20, /approve, /ask or /fail.'
    return Script(_words(reply), QUOTE_DELAY_MS / 1000)


def reply_to_tool(part: ToolReturnPart) -> str:
    if part.outcome == "denied":
        return f"Understood, I did not run {part.tool_name}: {part.content}"
    if part.tool_name == "ask_user":
        return f"You answered: {part.content}"
    return f"Done: {part.content}"


async def demo_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    last = messages[-1] if messages else None
    returns = [p for p in getattr(last, "parts", []) if isinstance(p, ToolReturnPart)]
    if isinstance(last, ModelRequest) and returns:
        step = workspace_demo.after_tool(last_prompt(messages), returns[-1])
        if step is not None and step.tool is not None:
            yield {0: DeltaToolCall(name=step.tool, json_args=json.dumps(step.args))}
            return
        text = step.text if step is not None else reply_to_tool(returns[-1])
        for token in _words(text):
            yield token
        return
    script = plan(last_prompt(messages), attempt_of(messages))
    if script.tool is not None:
        yield {0: DeltaToolCall(name=script.tool, json_args=json.dumps(script.args))}
        return
    for index, token in enumerate(script.tokens):
        if index and script.delay_s:
            await asyncio.sleep(script.delay_s)
        yield token
    if script.fail is not None:
        raise AgentFailed("demo_failure", script.fail, retryable=True)


@tether_tool
async def demo_note(ctx: RunContext[ToolDeps], text: str, delay_ms: int = 0) -> str:
    """Append ``text`` to the session's ``metadata.notes`` (a side effect that needs approval)."""
    if delay_ms:
        await asyncio.sleep(min(delay_ms, MAX_DELAY_MS) / 1000)
    update = ctx.deps.run.update_metadata
    if update is None:
        raise RuntimeError("this run has no session metadata to write to")
    await update(lambda meta: {**meta, "notes": [*meta.get("notes", []), text]})
    return f"added the note {text!r}"


async def ask_user(
    prompt: str, choices: list[str] | None = None, timeout_s: float | None = None
) -> str:
    """Ask the person a question; the run waits (durably) for the answer."""
    raise CallDeferred(
        metadata={"prompt": prompt, "choices": choices, "timeout_s": timeout_s}, kind="question"
    )


def demo_model() -> FunctionModel:
    return FunctionModel(stream_function=demo_stream, model_name="tether-demo")


def demo_tools() -> list[Tool[ToolDeps]]:
    return [
        Tool(demo_note, takes_ctx=True, requires_approval=True),
        Tool(ask_user, takes_ctx=False),
    ]


def demo_agent() -> Agent[ToolDeps, str | DeferredToolRequests]:
    return Agent(
        demo_model(),
        name="demo",
        deps_type=ToolDeps,
        output_type=[str, DeferredToolRequests],
        tools=[*demo_tools(), *workspace_tools()],
    )


def demo_runner(workspace: WorkspaceService | None = None) -> PydanticAIRunner:
    return PydanticAIRunner(demo_agent(), workspace)
