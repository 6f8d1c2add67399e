"""Helpers for driving the page in the browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from playwright.async_api import Page, expect

# Records every connection state #status shows, so a short "reconnecting" is not missed.
RECORD_STATES = """() => {
  window.__states = [];
  const el = document.getElementById("status");
  new MutationObserver(() => window.__states.push(el.dataset.state))
    .observe(el, {attributes: true, attributeFilter: ["data-state"]});
}"""


class PageErrors:
    """Uncaught errors and console errors of a page; a test ends by asserting there are none."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self._accept = 0
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("dialog", self._dialog)

    def accept_next_dialog(self) -> None:
        """The next confirm() is expected (e.g. "delete?") and gets accepted."""
        self._accept += 1

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        if self._accept:
            self._accept -= 1
            await dialog.accept()
            return
        self.errors.append(f"unexpected dialog: {dialog.type} {dialog.message}")
        await dialog.dismiss()


class Welcomes:
    """The `welcome` frames the page receives, in order (one per connection)."""

    def __init__(self, page: Page) -> None:
        self.frames: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        page.on("websocket", lambda ws: ws.on("framereceived", self._on_frame))

    def _on_frame(self, payload: str | bytes) -> None:
        if isinstance(payload, str) and '"type":"welcome"' in payload.replace(" ", ""):
            self.frames.append(json.loads(payload))
            self._changed.set()

    async def wait_for(self, count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
        """The first `count` welcomes, once that many have arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.frames) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.frames[:count]


async def open_page(
    context: Any, url: str, page: Page | None = None
) -> tuple[Page, PageErrors]:
    page = page or await context.new_page()
    errors = PageErrors(page)
    await page.goto(url)
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    return page, errors


async def send(page: Page, text: str) -> None:
    await page.fill("#composer", text)
    await page.press("#composer", "Enter")


async def run_state(page: Page, state: str, timeout_ms: int = 10_000) -> None:
    await expect(page.locator("#run-status")).to_have_attribute(
        "data-state", state, timeout=timeout_ms
    )


def session_id(page: Page) -> str:
    fragment = page.url.split("#s=", 1)
    assert len(fragment) == 2, f"no session id in {page.url}"
    return fragment[1]


async def assistant_texts(page: Page) -> list[str]:
    texts: list[str] = await page.locator("#messages [data-role=assistant] .text").all_inner_texts()
    return [t.strip() for t in texts]


async def stored_messages(base_url: str, sid: str) -> list[dict[str, Any]]:
    """What the server stored, via REST (the truth the page must match)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        snapshot = (await http.get(f"/v1/sessions/{sid}/snapshot")).json()
    messages: list[dict[str, Any]] = snapshot["messages"]
    return messages


def stream_text(n: int) -> str:
    return " ".join(f"t{i}" for i in range(1, n + 1))


class CuttableProxy:
    """A TCP proxy (browser → proxy → server) whose open connections a test can cut,
    like a network drop: no WebSocket close frame, just a reset."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()

    def cut(self) -> int:
        """Reset every open connection; returns how many there were."""
        links = list(self._links)
        self._links.clear()
        for client, upstream in links:
            client.transport.abort()
            upstream.transport.abort()
        return len(links)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


@contextlib.asynccontextmanager
async def proxied(upstream_port: int) -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy(upstream_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
