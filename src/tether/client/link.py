"""The live link of one client: the current socket and the reader task's loop.

The loop serves a connection, then reconnects (as ``close_action`` says, with
``Backoff``) and resumes from the cursor, or stops with a ``TetherError``. What it reads
is folded into ``SessionState``, queued in the ``EventInbox`` and matched to
``PendingCommands``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tether.client.backoff import Backoff
from tether.client.commands import PendingCommands
from tether.client.errors import CommandError, ConnectError, StreamError, TetherClosed, TetherError
from tether.client.inbox import EventInbox
from tether.client.state import SessionState
from tether.client.transport import (
    ABNORMAL_CLOSE,
    ConnectOptions,
    close_info,
    open_session,
    send_quietly,
)
from tether.protocol.codec import decode_server
from tether.protocol.errors import ClientAction, close_action
from tether.protocol.frames import AckFrame, ErrorFrame, EventFrame, PongFrame, SnapshotFrame

log = structlog.get_logger("tether.client")

_RESYNC = (1000, "resuming after a broken event stream")


@dataclass(frozen=True, slots=True)
class HelloSpec:
    """What the hello carries besides the cursor: a token and what to create."""

    token: str | None = None
    create: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Closed:
    code: int
    reason: str
    action: ClientAction


class Link:
    """Owns ``ws`` (the live socket, None while reconnecting) and ``failure``."""

    def __init__(
        self,
        options: ConnectOptions,
        backoff: Backoff,
        hello: HelloSpec,
        state: SessionState,
        inbox: EventInbox,
        pending: PendingCommands,
    ) -> None:
        self.state, self.inbox, self.pending = state, inbox, pending
        self.ws: ClientConnection | None = None
        self.failure: TetherError | None = None
        self.reconnects = 0
        self._options, self._backoff, self._hello_spec = options, backoff, hello
        self._drop_requested = False
        self._awaiting_snapshot, self._sync_seq = False, 0
        self._progress = asyncio.Event()  # replaced after each set: a broadcast pulse
        self.log = log.bind(url=options.url)

    # ------------------------------------------------------------------ for the client

    def is_synced(self) -> bool:
        """The state holds all the last welcome promised: snapshot and events to head."""
        return not self._awaiting_snapshot and self.state.last_seq >= self._sync_seq

    async def progress(self) -> None:
        """Wait for the next frame folded in or the failure (the caller sets a deadline)."""
        await self._progress.wait()

    def request_drop(self) -> bool:
        """Abort the socket with no close handshake; the loop then resumes at once."""
        if self.ws is None or self.failure is not None:
            return False
        self._drop_requested = True
        self.ws.transport.abort()
        self.log.info("connection dropped on purpose")
        return True

    async def shutdown(self, error: TetherError) -> None:
        """Close the socket (bounded by close_timeout_s) and fail waiters with ``error``.

        Call after the reader task has stopped.
        """
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close()
        self.fail(error)
        self.log.info("client closed")

    def fail(self, error: TetherError) -> None:
        """Record why the client stopped and wake every waiter with it. Idempotent."""
        if self.failure is not None:
            return
        self.failure = error
        self.pending.fail_all(error)
        self.inbox.end(error)
        self._notify()

    # ------------------------------------------------------------------ opening

    async def open(self) -> ClientConnection:
        """One attempt: connect, hello, fold the welcome in; raise a ``TetherError``."""
        ws, welcome = await open_session(self._options, self._hello())
        self.state.apply(welcome)
        self._awaiting_snapshot, self._sync_seq = not welcome.recovered, welcome.head_seq
        self.log = log.bind(url=self._options.url, session_id=welcome.session_id)
        self.log.info(
            "welcome",
            epoch=welcome.epoch,
            head_seq=welcome.head_seq,
            recovered=welcome.recovered,
            last_seq=self.state.last_seq,
        )
        return ws

    def _hello(self) -> dict[str, Any]:
        hello: dict[str, Any] = {"type": "hello"}
        if self._hello_spec.token is not None:
            hello["token"] = self._hello_spec.token
        if self.state.session_id is not None:
            hello["session_id"] = self.state.session_id
        elif self._hello_spec.create is not None:
            hello["create"] = self._hello_spec.create
        if (cursor := self.state.cursor) is not None:
            hello["resume"] = {"epoch": cursor[0], "seq": cursor[1]}
        return hello

    # ------------------------------------------------------------------ the loop

    async def run(self, ws: ClientConnection) -> None:
        """The reader task: serve a connection, then reconnect or stop, until cancelled."""
        try:
            while True:
                await self._attach(ws)
                closed = await self._serve(ws)
                ws = await self._recover(closed)
        except TetherError as exc:
            self.log.warning("client stopped", error=str(exc))
            self.fail(exc)
        except Exception as exc:
            self.log.exception("client reader crashed")
            self.fail(TetherError(f"client reader crashed: {exc!r}"))

    async def _attach(self, ws: ClientConnection) -> None:
        # Set ws and snapshot the pending commands with no await in between, so each
        # pending command is sent exactly once on this connection (here or by the client).
        self.ws = ws
        for text in self.pending.texts():
            await send_quietly(ws, text)

    async def _serve(self, ws: ClientConnection) -> _Closed:
        try:
            while True:
                self._on_text(await ws.recv())
        except ConnectionClosed as exc:
            return self._closed(*close_info(exc))
        except StreamError as exc:
            self.log.error("event stream broken; resuming from cursor", error=str(exc))
            await ws.close(*_RESYNC)
            return _Closed(*_RESYNC, ClientAction.RESUME)

    def _closed(self, code: int, reason: str) -> _Closed:
        dropped, self._drop_requested = self._drop_requested, False
        if dropped and code == ABNORMAL_CLOSE:
            return _Closed(code, "dropped by drop()", ClientAction.RESUME)
        return _Closed(code, reason, close_action(code))

    async def _recover(self, closed: _Closed) -> ClientConnection:
        self.ws = None
        self.log.info(
            "connection closed", code=closed.code, reason=closed.reason, action=closed.action
        )
        if closed.action is ClientAction.STOP:
            raise TetherClosed(closed.code, closed.reason)
        return await self._reconnect(closed.action)

    async def _reconnect(self, action: ClientAction) -> ClientConnection:
        """Try up to ``max_attempts`` times; a terminal close stops at once."""
        error: ConnectError | None = None
        for attempt in range(self._backoff.max_attempts):
            delay_s = self._backoff.delay_s(attempt, action)
            self.log.info("reconnecting", attempt=attempt + 1, delay_s=round(delay_s, 3))
            await asyncio.sleep(delay_s)  # a backoff delay, not a wait for an event
            try:
                ws = await self.open()
            except ConnectError as exc:
                self.log.warning("reconnect failed", attempt=attempt + 1, error=str(exc))
                error = exc
                continue
            self.reconnects += 1
            return ws
        attempts = self._backoff.max_attempts
        raise ConnectError(f"gave up after {attempts} reconnect attempts: {error}", attempts)

    # ------------------------------------------------------------------ frames

    def _on_text(self, text: str | bytes) -> None:
        try:
            frame = decode_server(text)
        except ValidationError as exc:
            # A malformed frame is a server bug; a lost event shows up as a gap next.
            self.log.error("undecodable server frame", error=str(exc))
            return
        self._dispatch(frame)

    def _dispatch(self, frame: BaseModel) -> None:
        if isinstance(frame, AckFrame):
            self.pending.resolve(frame.id, frame)
        elif isinstance(frame, PongFrame):
            self.pending.resolve(f"ping:{frame.t}", frame)
        elif isinstance(frame, ErrorFrame):
            self._on_error(frame)
        else:
            self._deliver(frame)

    def _on_error(self, frame: ErrorFrame) -> None:
        if frame.id is None or not self.pending.reject(frame.id, CommandError.from_frame(frame)):
            self.log.warning("server error", code=frame.code, message=frame.message, id=frame.id)

    def _deliver(self, frame: BaseModel) -> None:
        try:
            applied = self.state.apply(frame)
        except StreamError as exc:
            self._enqueue(exc.applied)
            raise
        if isinstance(frame, SnapshotFrame):
            self._awaiting_snapshot = False
        self._enqueue(applied)
        self._notify()

    def _enqueue(self, events: list[EventFrame]) -> None:
        for event in events:
            if self.inbox.put(event) and self.inbox.dropped == 1:
                self.log.warning("event queue full: dropping oldest unread events")

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()
