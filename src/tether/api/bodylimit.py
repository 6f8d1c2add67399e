"""A cap on REST request bodies (``max_frame_bytes``, like a socket frame): larger bodies
get a 413 problem before the app reads them; chunked bodies are counted as they arrive."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.api.problems import PROBLEM


def _problem(path: str, max_bytes: int) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": "too large",
            "status": 413,
            "detail": f"request body exceeds {max_bytes} bytes",
            "instance": path,
            "code": "too_large",
        }
    ).encode()


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): read it all, at most max_bytes, then replay it.
        buffered = await self._buffer(receive)
        if buffered is None:
            await self._refuse(scope, send)
            return
        await self.app(scope, _replay(buffered, receive), send)

    async def _buffer(self, receive: Receive) -> list[Message] | None:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = _problem(str(scope.get("path", "")), self.max_bytes)
        headers: list[Any] = [
            (b"content-type", PROBLEM.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
