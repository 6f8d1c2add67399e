"""A local, scripted OpenAI-compatible chat-completions endpoint (SSE streaming, tool
calls, usage in the final chunk) for tests of the real provider code path. No network:
it listens on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.harness import bound_socket

MODEL = "fake-coder"


@dataclass(frozen=True)
class Say:
    """Stream ``tokens`` as text, then stop."""

    tokens: list[str]
    usage: tuple[int, int] = (10, 5)


@dataclass(frozen=True)
class Call:
    """Stream one tool call (its arguments in two pieces), then finish with tool_calls."""

    name: str
    args: dict[str, Any]
    text: str = ""
    usage: tuple[int, int] = (20, 7)


@dataclass
class FakeOpenAI:
    script: list[Say | Call]
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def completions(self, request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if not self.script:
            return JSONResponse({"error": {"message": "script exhausted"}}, status_code=500)
        step = self.script.pop(0)
        return StreamingResponse(_sse(step, len(self.requests)), media_type="text/event-stream")


def _chunk(number: int, delta: dict[str, Any] | None, finish: str | None = None,
           usage: tuple[int, int] | None = None) -> str:  # fmt: skip
    body: dict[str, Any] = {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [] if delta is None else [
            {"index": 0, "delta": delta, "finish_reason": finish}
        ],
    }  # fmt: skip
    if usage is not None:
        prompt, completion = usage
        body["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n"


def _events(step: Say | Call, number: int) -> Iterator[str]:
    yield _chunk(number, {"role": "assistant", "content": ""})
    if isinstance(step, Say):
        for token in step.tokens:
            yield _chunk(number, {"content": token})
        yield _chunk(number, {}, "stop")
    else:
        if step.text:
            yield _chunk(number, {"content": step.text})
        arguments = json.dumps(step.args)
        half = len(arguments) // 2
        call_id = f"call_{number}"
        head = {"index": 0, "id": call_id, "type": "function",
                "function": {"name": step.name, "arguments": arguments[:half]}}  # fmt: skip
        yield _chunk(number, {"tool_calls": [head]})
        tail = {"index": 0, "function": {"arguments": arguments[half:]}}
        yield _chunk(number, {"tool_calls": [tail]})
        yield _chunk(number, {}, "tool_calls")
    yield _chunk(number, None, usage=step.usage)
    yield "data: [DONE]\n\n"


async def _sse(step: Say | Call, number: int) -> AsyncIterator[str]:
    for event in _events(step, number):
        yield event
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def fake_openai(script: list[Say | Call]) -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(list(script))
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    sock = bound_socket()
    fake.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield fake
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()
