"""A real tether server for tests: uvicorn on 127.0.0.1 port 0, in the test's event loop,
or ``tether serve`` as a subprocess (for kill -9 tests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from tether.app import create_app
from tether.core.engine import Engine
from tether.settings import Settings

READ_TIMEOUT_S = 10.0


def make_settings(store_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"store_url": store_url, "log_level": "WARNING"}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Running:
    port: int
    engine: Engine

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"


def free_port() -> int:
    """A port that was free a moment ago (for a server that must come back on the same one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    return sock


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Running]:
    """Run the app under uvicorn until the block ends; the port is known up front."""
    app = create_app(settings)
    sock = bound_socket()
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        ws_max_size=settings.max_frame_bytes,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield Running(sock.getsockname()[1], app.state.engine)
    finally:
        server.should_exit = True
        async with asyncio.timeout(15):
            await task
        sock.close()


@contextlib.contextmanager
def serve_in_thread(settings: Settings) -> Iterator[Running]:
    """The same server on its own event loop in a thread, for synchronous test drivers
    (hypothesis, schemathesis). Only talk to it over the network."""
    app = create_app(settings)
    sock = bound_socket()
    config = uvicorn.Config(
        app, log_config=None, lifespan="on", ws_max_size=settings.max_frame_bytes
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="tether-test-server"
    )
    thread.start()
    try:
        for _ in range(300):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not server.started:
            raise RuntimeError("test server did not start within 15 s")
        yield Running(sock.getsockname()[1], app.state.engine)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


async def raw_connect(
    running: Running, hello: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[ClientConnection, list[dict[str, Any]]]:
    """A bare socket after hello: returns it with the welcome (and snapshot, if any)."""
    ws = await websockets.connect(running.ws, open_timeout=READ_TIMEOUT_S, **kwargs)
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        await ws.send(json.dumps(hello if hello is not None else {"type": "hello"}))
        frames.append(await recv(ws))
        if frames[0].get("type") == "welcome" and not frames[0]["recovered"]:
            frames.append(await recv(ws))
    return ws, frames


async def recv(ws: ClientConnection, timeout_s: float = READ_TIMEOUT_S) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        data: dict[str, Any] = json.loads(await ws.recv())
        return data


async def recv_until(
    ws: ClientConnection, predicate: Any, timeout_s: float = READ_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Frames up to and including the first for which ``predicate(frame)`` holds."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if predicate(frame):
                return frames


async def close_code(ws: ClientConnection, timeout_s: float = READ_TIMEOUT_S) -> int | None:
    """Read until the server closes; returns its close code."""
    async with asyncio.timeout(timeout_s):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
    return ws.close_code


class ServerProcess:
    """``tether serve`` in a subprocess, on ``port`` (0: one it picks) that it announces."""

    def __init__(self, env: dict[str, str], port: int = 0) -> None:
        self.env = {**os.environ, **env, "TETHER_PORT": str(port), "TETHER_LOG_FORMAT": "json"}
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    async def start(self) -> int:
        self.proc = await asyncio.to_thread(self._spawn)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 30)
        if "serving at" not in line:
            raise RuntimeError(f"tether serve did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        return self.port

    def _spawn(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tether.cli", "serve"],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_pipe()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
