"""``GET /v1/ws``: the WebSocket endpoint (protocol v1, DESIGN §3).

One connection = three owned tasks: the reader (frames → commands), the sender (the
outbox, in cursor order) and the overflow watcher. The first to end decides the close
code; the others are cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections import deque
from typing import NoReturn

import structlog
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tether.api.auth import Authenticator, bearer, refusal
from tether.core.engine import Engine
from tether.core.hub import Outbox, TooManyConnections
from tether.core.sessions import Forbidden
from tether.core.stream import Closing, EventStream, can_resume
from tether.limits.bucket import TokenBucket
from tether.limits.guard import Scope, TooManyOpen
from tether.protocol.codec import DecodeLimits, decode, encode
from tether.protocol.errors import CloseCode, ErrorCode, ProtocolError
from tether.protocol.frames import (
    AckFrame,
    CancelFrame,
    CreateSpec,
    ErrorFrame,
    HelloFrame,
    Limits,
    MessageFrame,
    PingFrame,
    PongFrame,
    RespondFrame,
    RetryFrame,
    WelcomeFrame,
)
from tether.store.contract import NotFound, SessionRecord, StoreError

log = structlog.get_logger(__name__)
router = APIRouter()
MAX_READ_PAUSE_S = 5.0


def decode_limits(engine: Engine) -> DecodeLimits:
    s = engine.settings
    return DecodeLimits(
        max_frame_bytes=s.max_frame_bytes,
        max_message_chars=s.max_message_chars,
        max_json_depth=s.max_json_depth,
        max_command_id_chars=s.max_command_id_chars,
        max_metadata_bytes=s.max_metadata_bytes,
        max_metadata_keys=s.max_metadata_keys,
    )


def error_frame(exc: ProtocolError) -> ErrorFrame:
    return ErrorFrame(
        code=exc.code,
        message=exc.message,
        id=exc.command_id,
        retry_after_ms=exc.retry_after_ms,
        details=exc.details,
    )


class Connection:
    """One client socket from hello to close."""

    def __init__(self, websocket: WebSocket, engine: Engine, auth: Authenticator) -> None:
        self.ws = websocket
        self.engine = engine
        self.auth = auth
        self.settings = engine.settings
        self.limits = decode_limits(engine)
        self.conn_id = os.urandom(6).hex()
        self.log = log.bind(conn_id=self.conn_id)
        self.user = ""
        self.outbox = Outbox(self.settings.outbound_queue_frames)
        self._bad_frames: deque[float] = deque(maxlen=self.settings.max_bad_frames + 1)
        s = self.settings
        self._bucket = TokenBucket.full(s.frame_burst, s.frames_per_s, time.monotonic())

    async def send_text(self, text: str) -> None:
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                await self.ws.send_text(text)
        except TimeoutError:
            raise Closing(CloseCode.SLOW_CONSUMER, "send timed out: slow consumer") from None

    async def close(self, code: int, reason: str) -> None:
        self.engine.metrics.closes.labels(code=str(code)).inc()
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason[:120])

    async def hello(self) -> HelloFrame:
        try:
            async with asyncio.timeout(self.settings.hello_timeout_s):
                text = await self.ws.receive_text()
        except TimeoutError:
            raise Closing(CloseCode.HELLO_TIMEOUT, "no hello in time") from None
        except (KeyError, RuntimeError):
            raise Closing(CloseCode.BAD_HELLO, "hello must be a JSON text frame") from None
        try:
            frame = decode(text, self.limits)
        except ProtocolError as exc:
            raise Closing(CloseCode.BAD_HELLO, f"bad hello: {exc.message}") from None
        if not isinstance(frame, HelloFrame):
            raise Closing(CloseCode.BAD_HELLO, "the first frame must be hello")
        return frame

    async def authenticate(self, hello: HelloFrame) -> str:
        """The caller's user, after the per-user connection rate and open-socket cap
        (refused with an ``error`` frame, then close 1013). Never logs the token."""
        token = hello.token or bearer(self.ws.headers.get("authorization"))
        user = self.auth.user_for(token)
        if user is None:
            raise Closing(CloseCode.UNAUTHENTICATED, "not authenticated")
        try:
            await self.engine.guard.take(user, Scope.CONNECTS)
            self.engine.open_counts.acquire(user)
        except ProtocolError as exc:
            await self.refuse(exc)
        except TooManyOpen as exc:
            await self.refuse(ProtocolError(ErrorCode.QUOTA_EXCEEDED, str(exc)))
        self.user = user
        return user

    async def refuse(self, exc: ProtocolError) -> NoReturn:
        with contextlib.suppress(Exception):
            await self.send_text(encode(error_frame(exc)))
        raise Closing(CloseCode.TRY_AGAIN_LATER, exc.message)

    async def attach(self, hello: HelloFrame, user: str) -> SessionRecord:
        sessions = self.engine.sessions
        if hello.session_id is None:
            spec = hello.create or CreateSpec()
            try:
                return await sessions.create(
                    user,
                    title=spec.title,
                    agent=spec.agent,
                    metadata=spec.metadata,
                    policy=spec.policy,
                )
            except ProtocolError as exc:
                raise Closing(CloseCode.BAD_HELLO, exc.message) from None
        try:
            return await sessions.owned(user, hello.session_id)
        except NotFound:
            raise Closing(CloseCode.NOT_FOUND, "no such session") from None
        except Forbidden:
            raise Closing(CloseCode.FORBIDDEN, "not your session") from None

    async def serve(self) -> None:
        hello = await self.hello()
        user = await self.authenticate(hello)
        try:
            await self._attached(hello, user)
        finally:
            self.engine.open_counts.release(user)

    async def _attached(self, hello: HelloFrame, user: str) -> None:
        session = await self.attach(hello, user)
        self.log = self.log.bind(session_id=session.id, user=self.user)
        try:
            self.engine.hub.subscribe(session.id, self.outbox)
        except TooManyConnections as exc:
            raise Closing(CloseCode.TRY_AGAIN_LATER, str(exc)) from None
        try:
            await self._run(session.id, hello)
        finally:
            self.engine.hub.unsubscribe(session.id, self.outbox)

    async def _run(self, session_id: str, hello: HelloFrame) -> None:
        # Subscribed first, read second: anything committed after this read arrives live.
        session = await self.engine.store.get_session(session_id)
        if session is None:
            raise Closing(CloseCode.NOT_FOUND, "no such session")
        stream = EventStream(
            self.engine.store,
            session,
            self.outbox,
            self.send_text,
            self.engine.metrics,
            self.settings.replay_batch_events,
        )
        recovered = can_resume(session, hello.resume, self.settings.max_replay_events)
        await stream.send_frame(self._welcome(session, recovered))
        if recovered and hello.resume is not None:
            count = await stream.replay(hello.resume.seq, session.head_seq)
            self.engine.metrics.replay_events.observe(count)
        else:
            snapshot = await self.engine.sessions.snapshot(session.id)
            await stream.snapshot(snapshot, snapshot.as_of_seq)
        self.log.info("attached", recovered=recovered, head_seq=session.head_seq)
        await self._race(stream, session.id)

    def _welcome(self, session: SessionRecord, recovered: bool) -> WelcomeFrame:
        s = self.settings
        limits = Limits(
            max_frame_bytes=s.max_frame_bytes,
            max_message_chars=s.max_message_chars,
            max_command_id_chars=s.max_command_id_chars,
            hello_timeout_s=s.hello_timeout_s,
        )
        return WelcomeFrame(
            session_id=session.id,
            epoch=session.epoch,
            head_seq=session.head_seq,
            recovered=recovered,
            user=self.user,
            server_id=self.engine.server_id,
            limits=limits,
        )

    async def _race(self, stream: EventStream, session_id: str) -> None:
        tasks = [
            asyncio.create_task(self._read(session_id), name="ws-reader"),
            asyncio.create_task(stream.pump(), name="ws-sender"),
            asyncio.create_task(self._watch_overflow(), name="ws-overflow"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _watch_overflow(self) -> None:
        await self.outbox.overflowed.wait()
        self.engine.metrics.slow_consumers.inc()
        raise Closing(CloseCode.SLOW_CONSUMER, "outbound queue overflowed: resume from cursor")

    async def _read(self, session_id: str) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text_or_bytes: str | bytes = message.get("bytes") or b""
            else:
                text_or_bytes = text
            if len(text_or_bytes) > self.settings.max_frame_bytes:
                raise Closing(CloseCode.TOO_BIG, "frame too large")
            reply = await self._handle(session_id, text_or_bytes)
            if reply is not None:
                self._reply(reply)

    def _reply(self, frame: BaseModel) -> None:
        if isinstance(frame, ErrorFrame):
            self.engine.metrics.errors.labels(code=frame.code).inc()
        self.outbox.offer(frame)

    def _count_bad_frame(self) -> None:
        now = time.monotonic()
        self._bad_frames.append(now)
        window = self.settings.bad_frame_window_s
        if (
            len(self._bad_frames) > self.settings.max_bad_frames
            and now - self._bad_frames[0] < window
        ):
            raise Closing(CloseCode.POLICY_VIOLATION, "too many bad frames")

    async def _throttle(self) -> bool:
        """The per-connection frame bucket. An over-limit frame is answered
        ``rate_limited`` and dropped, then this socket is not read until a token is back:
        TCP backpressure slows the flooder instead of the server paying for every frame."""
        wait_s = self._bucket.take(time.monotonic())
        if wait_s <= 0:
            return False
        self.engine.metrics.rate_limited.labels(scope="frames").inc()
        self._reply(
            ErrorFrame(
                code=ErrorCode.RATE_LIMITED,
                message="too many frames",
                retry_after_ms=max(1, math.ceil(wait_s * 1000)),
            )
        )
        await asyncio.sleep(min(wait_s, MAX_READ_PAUSE_S))
        return True

    async def _handle(self, session_id: str, raw: str | bytes) -> BaseModel | None:
        if await self._throttle():
            return None
        try:
            frame = decode(raw, self.limits)
        except ProtocolError as exc:
            self._count_bad_frame()
            return error_frame(exc)
        self.engine.metrics.frames_in.labels(type=getattr(frame, "type", "?")).inc()
        try:
            return await self._dispatch(session_id, frame)
        except ProtocolError as exc:
            return error_frame(exc)
        except Exception as exc:
            return self._failure(frame, exc)

    def _failure(self, frame: BaseModel, exc: Exception) -> ErrorFrame:
        command_id = getattr(frame, "id", None)
        if isinstance(exc, NotFound):
            raise Closing(CloseCode.NOT_FOUND, "session deleted") from None
        if isinstance(exc, StoreError):
            self.log.warning("command_store_error", error=str(exc))
        else:
            self.log.exception("command_failed")
        return ErrorFrame(
            code=ErrorCode.INTERNAL,
            message="internal error; retry with the same id",
            id=command_id,
            retry_after_ms=1000,
        )

    async def _dispatch(self, session_id: str, frame: BaseModel) -> BaseModel | None:
        sessions = self.engine.sessions
        match frame:
            case PingFrame(t=t):
                return PongFrame(t=t)
            case MessageFrame(id=cid, content=content, policy=policy):
                result = await sessions.message(self.user, session_id, cid, content, policy)
                return AckFrame(id=cid, duplicate=result.duplicate, result=result.result)
            case CancelFrame(id=cid, run_id=run_id):
                result = await sessions.cancel(self.user, session_id, cid, run_id)
                return AckFrame(id=cid, duplicate=result.duplicate, result=result.result)
            case RespondFrame(id=cid, interrupt_id=iid, approved=ok, answer=answer, note=note):
                result = await sessions.respond(self.user, session_id, cid, iid, ok, answer, note)
                return AckFrame(id=cid, duplicate=result.duplicate, result=result.result)
            case RetryFrame(id=cid, run_id=run_id):
                result = await sessions.retry(self.user, session_id, cid, run_id)
                return AckFrame(id=cid, duplicate=result.duplicate, result=result.result)
            case HelloFrame():
                raise ProtocolError(ErrorCode.INVALID, "already attached; open a new connection")
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "unhandled frame")


@router.websocket("/v1/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    engine: Engine = websocket.app.state.engine
    auth: Authenticator = websocket.app.state.auth
    origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
    if (reason := refusal(origin, host, engine.settings)) is not None:
        log.warning("ws_refused", reason=reason)
        await websocket.close(CloseCode.FORBIDDEN)  # before accept: an HTTP 403
        return
    await websocket.accept()
    connection = Connection(websocket, engine, auth)
    engine.metrics.connections.inc()
    try:
        await connection.serve()
        await connection.close(1000, "bye")
    except Closing as exc:
        connection.log.info("closing", code=exc.code, reason=exc.reason)
        await connection.close(exc.code, exc.reason)
    except WebSocketDisconnect:
        pass
    except Exception:
        connection.log.exception("connection_crashed")
        await connection.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        engine.metrics.connections.dec()
