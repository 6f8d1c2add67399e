"""The ``demo`` agent: a pydantic-ai agent driven by a scripted offline model.

Commands (the last user message):
  ``/stream N [delay_ms]``  a reply of N tokens ``t1 t2 … tN`` (N ≤ 100,000)
  ``/fail [text]``          streams one token, then the run fails with ``text``
  anything else             a short streamed reply that quotes the message
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

from tether.agents.pydantic_ai import PydanticAIRunner
from tether.agents.runner import AgentFailed

MAX_STREAM_TOKENS = 100_000
MAX_DELAY_MS = 10_000
QUOTE_DELAY_MS = 15


@dataclass(frozen=True, slots=True)
class Script:
    tokens: list[str]
    delay_s: float = 0.0
    fail: str | None = None


def last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def _int(text: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(text)))
    except ValueError:
        return default


def plan(prompt: str) -> Script:
    """What the demo model says to ``prompt``: pure, so tests can check it directly."""
    words = prompt.strip().split()
    command = words[0] if words else ""
    if command == "/stream":
        count = _int(words[1], 10, 1, MAX_STREAM_TOKENS) if len(words) > 1 else 10
        delay_ms = _int(words[2], 0, 0, MAX_DELAY_MS) if len(words) > 2 else 0
        tokens = [f"t{i}" if i == 1 else f" t{i}" for i in range(1, count + 1)]
        return Script(tokens, delay_ms / 1000)
    if command == "/fail":
        reason = " ".join(words[1:]) or "the demo agent failed on request"
        return Script(["Working on it…"], 0.0, fail=reason)
    quoted = prompt.strip()[:500]
    reply = f'You said: "{quoted}". Try /stream 50 20, or /fail.'
    return Script(
        [w if i == 0 else f" {w}" for i, w in enumerate(reply.split(" "))], QUOTE_DELAY_MS / 1000
    )


async def demo_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    script = plan(last_prompt(messages))
    for index, token in enumerate(script.tokens):
        if index and script.delay_s:
            await asyncio.sleep(script.delay_s)
        yield token
    if script.fail is not None:
        raise AgentFailed("demo_failure", script.fail, retryable=True)


def demo_agent() -> Agent[None, str]:
    return Agent(FunctionModel(stream_function=demo_stream, model_name="tether-demo"), name="demo")


def demo_runner() -> PydanticAIRunner:
    return PydanticAIRunner(demo_agent())
