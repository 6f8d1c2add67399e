"""One connection attempt: open the socket, say hello, read the welcome.

Every transport failure leaves here as one ``TetherError``: ``TetherClosed`` when the
server said "stop" (a terminal close code, or an HTTP 4xx on the upgrade), else
``ConnectError``, which the caller may retry.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Origin

from tether.client.errors import ConnectError, TetherClosed, TetherError
from tether.protocol.codec import decode_server
from tether.protocol.errors import ClientAction, close_action
from tether.protocol.frames import WelcomeFrame

log = structlog.get_logger("tether.client")

ABNORMAL_CLOSE = 1006


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    origin: str | None = None
    open_timeout_s: float = 10.0
    hello_timeout_s: float = 10.0
    close_timeout_s: float = 5.0
    max_frame_bytes: int = 16 * 1024 * 1024


async def open_session(
    options: ConnectOptions, hello: dict[str, Any]
) -> tuple[ClientConnection, WelcomeFrame]:
    """Connect and complete the hello; the socket is closed again if anything fails."""
    ws = await _connect(options)
    try:
        welcome = await _handshake(ws, hello, options.hello_timeout_s)
    except BaseException:
        await ws.close()  # bounded by close_timeout_s
        raise
    return ws, welcome


async def send_quietly(ws: ClientConnection, text: str) -> None:
    """Send, ignoring a closed socket: the reader notices the close and reconnects."""
    try:
        await ws.send(text)
    except ConnectionClosed:
        return


def close_info(exc: ConnectionClosed) -> tuple[int, str]:
    """The code and reason the server sent, else the one we sent, else 1006."""
    close = exc.rcvd or exc.sent
    return (close.code, close.reason) if close is not None else (ABNORMAL_CLOSE, "")


async def _connect(options: ConnectOptions) -> ClientConnection:
    try:
        return await connect(
            options.url,
            additional_headers=options.headers,
            origin=Origin(options.origin) if options.origin else None,
            open_timeout=options.open_timeout_s,
            close_timeout=options.close_timeout_s,
            max_size=options.max_frame_bytes,
            proxy=None,
        )
    except InvalidStatus as exc:
        raise _refused(exc) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise ConnectError(f"cannot connect to {options.url}: {exc!r}") from exc


async def _handshake(ws: ClientConnection, hello: dict[str, Any], timeout_s: float) -> WelcomeFrame:
    try:
        await ws.send(json.dumps(hello))
        async with asyncio.timeout(timeout_s):
            return await _read_welcome(ws)
    except ConnectionClosed as exc:
        code, reason = close_info(exc)
        if close_action(code) is ClientAction.STOP:
            raise TetherClosed(code, reason) from exc
        raise ConnectError(f"closed during hello: {code} {reason}".rstrip(), code=code) from exc
    except TimeoutError as exc:
        raise ConnectError(f"no welcome within {timeout_s} s") from exc
    except ValidationError as exc:
        raise ConnectError(f"bad frame during hello: {exc}") from exc


async def _read_welcome(ws: ClientConnection) -> WelcomeFrame:
    while True:
        frame = decode_server(await ws.recv())
        if isinstance(frame, WelcomeFrame):
            return frame
        # e.g. an `error` for a bad hello; the close that follows says what to do.
        log.warning("frame before welcome", frame=frame.model_dump(mode="json"))


def _refused(exc: InvalidStatus) -> TetherError:
    """An HTTP answer to the upgrade: a 4xx is final (401 → 4401 ...), the rest retried."""
    status = exc.response.status_code
    if 400 <= status < 500 and status not in (408, 429):
        return TetherClosed(4000 + status, f"HTTP {status} on upgrade")
    return ConnectError(f"upgrade refused with HTTP {status}", code=status)
