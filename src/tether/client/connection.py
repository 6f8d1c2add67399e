"""``TetherClient``: the user-facing API over one session's ``Link``.

The pure rules live in ``SessionState`` (cursor, duplicates, gaps) and ``Backoff``
(delays); ``Link`` runs the reader loop (serve, reconnect, resume); this module adds the
lifecycle, commands with deadlines, and the event stream.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

from tether.client.backoff import Backoff
from tether.client.commands import Answer, PendingCommands
from tether.client.errors import ClientClosedError, ConnectError, TetherError
from tether.client.inbox import EventInbox
from tether.client.link import HelloSpec, Link
from tether.client.state import DEFAULT_MAX_EVENTS, SessionState
from tether.client.transport import ConnectOptions, send_quietly
from tether.protocol.frames import AckFrame, EventFrame, Policy, WelcomeFrame

DEFAULT_COMMAND_TIMEOUT_S = 10.0
DEFAULT_EVENT_TIMEOUT_S = 30.0


def new_command_id() -> str:
    """A fresh client-made command id (32 hex chars; the protocol allows 1..64)."""
    return uuid.uuid4().hex


class TetherClient:
    """An asyncio client for one tether session, used as ``async with TetherClient(...)``.

    Guarantees: every event is surfaced at most once and in ``seq`` order (duplicates are
    dropped, a gap triggers a resume); after a disconnect the client reconnects as the
    close code says and resumes from its cursor; a command waiting for its answer is
    re-sent with the same id on the new connection, so it is never lost and, because the
    server deduplicates ids, never runs twice. Every wait has a deadline.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        session_id: str | None = None,
        create: Mapping[str, Any] | None = None,
        token_in: Literal["header", "hello"] = "header",
        origin: str | None = None,
        state: SessionState | None = None,
        hello_timeout_s: float = 10.0,
        sync_timeout_s: float | None = 30.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 5.0,
        max_frame_bytes: int = 16 * 1024 * 1024,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 5.0,
        max_reconnect_attempts: int = 10,
        event_queue_size: int = 10_000,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        self.url = url
        # A caller may pass the state of an earlier client to resume from its cursor.
        self.state = state if state is not None else SessionState(session_id, max_events=max_events)
        headers = {"Authorization": f"Bearer {token}"} if token and token_in == "header" else {}
        hello = HelloSpec(token if token_in == "hello" else None, _copy(create))
        self._close_timeout_s, self._sync_timeout_s = close_timeout_s, sync_timeout_s
        options = ConnectOptions(
            url, headers, origin, open_timeout_s, hello_timeout_s, close_timeout_s, max_frame_bytes
        )
        backoff = Backoff(backoff_base_s, backoff_cap_s, max_reconnect_attempts)
        self._inbox = EventInbox(event_queue_size)
        self._pending = PendingCommands()
        self._link = Link(options, backoff, hello, self.state, self._inbox, self._pending)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ properties

    @property
    def session_id(self) -> str | None:
        return self.state.session_id

    @property
    def welcome(self) -> WelcomeFrame | None:
        """The welcome of the current (or last) connection."""
        return self.state.welcome

    @property
    def connected(self) -> bool:
        return self._link.ws is not None and self._link.failure is None

    @property
    def failure(self) -> TetherError | None:
        """Why the client stopped (``TetherClosed``, ``ConnectError``...), or None."""
        return self._link.failure

    @property
    def reconnects(self) -> int:
        """Successful reconnects so far (the first connection is not counted)."""
        return self._link.reconnects

    @property
    def dropped_events(self) -> int:
        """Events the ``events()`` queue dropped (drop-oldest) because nobody read them."""
        return self._inbox.dropped

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> TetherClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the first connection (one attempt: fail fast), start the reader and,
        unless ``sync_timeout_s`` is None, wait until the state has caught up.

        Raises ``TetherClosed`` for a terminal close code (or an HTTP 4xx on the
        upgrade), ``ConnectError`` for anything else; nothing is left running then.
        """
        if self._task is not None or self._closing:
            raise RuntimeError("connect() may be called once per client")
        ws = await self._link.open()
        self._task = asyncio.create_task(self._link.run(ws), name=f"tether-client {self.url}")
        if self._sync_timeout_s is None:
            return
        try:
            await self.wait_synced(self._sync_timeout_s)
        except TimeoutError as exc:
            await self.close()
            raise ConnectError(f"not synced within {self._sync_timeout_s} s") from exc
        except BaseException:
            await self.close()
            raise

    async def wait_synced(self, timeout_s: float = DEFAULT_EVENT_TIMEOUT_S) -> None:
        """Wait until the state holds all the server had at the last welcome.

        That is the snapshot (when the cursor was not recovered) and the events up to
        the welcome's ``head_seq``.
        """
        async with asyncio.timeout(timeout_s):
            while not self._link.is_synced():
                self._raise_if_stopped()
                await self._link.progress()

    async def close(self) -> None:
        """Stop the reader (cancelled and awaited), close the socket, fail what waits.

        Idempotent. Pending commands raise ``ClientClosedError``; ``events()`` ends.
        """
        if self._closing:
            return
        self._closing = True
        await self._stop_reader()
        await self._link.shutdown(ClientClosedError("client closed"))

    async def drop(self) -> bool:
        """Test helper: cut the TCP connection with no close handshake (a network fault).

        The reader then reconnects at once and resumes from the cursor. Returns False
        when there was no live connection to cut.
        """
        return self._link.request_drop()

    # ------------------------------------------------------------------ commands

    async def send_message(
        self,
        content: str,
        *,
        policy: Policy | None = None,
        command_id: str | None = None,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> AckFrame:
        """Send a user message; the ack's ``result`` carries its ``run_id``."""
        frame: dict[str, Any] = {"type": "message", "content": content}
        if policy is not None:
            frame["policy"] = policy
        return await self.command(frame, timeout_s, command_id=command_id)

    async def respond(
        self,
        interrupt_id: str,
        *,
        approved: bool | None = None,
        answer: str | None = None,
        note: str | None = None,
        command_id: str | None = None,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> AckFrame:
        """Answer an interrupt: ``approved`` for an approval, ``answer`` for a question."""
        fields = {"approved": approved, "answer": answer, "note": note}
        frame: dict[str, Any] = {"type": "respond", "interrupt_id": interrupt_id}
        frame |= {key: value for key, value in fields.items() if value is not None}
        return await self.command(frame, timeout_s, command_id=command_id)

    async def cancel(
        self,
        run_id: str | None = None,
        *,
        command_id: str | None = None,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> AckFrame:
        """Cancel the active run, or the named one."""
        return await self.command(_with_run("cancel", run_id), timeout_s, command_id=command_id)

    async def retry(
        self,
        run_id: str | None = None,
        *,
        command_id: str | None = None,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> AckFrame:
        """Re-run a failed, cancelled or interrupted run."""
        return await self.command(_with_run("retry", run_id), timeout_s, command_id=command_id)

    async def ping(self, timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S) -> float:
        """Application-level round trip in seconds (re-sent after a reconnect too)."""
        token = uuid.uuid4().hex
        started = asyncio.get_running_loop().time()
        await self._request(f"ping:{token}", {"type": "ping", "t": token}, timeout_s)
        return asyncio.get_running_loop().time() - started

    async def command(
        self,
        frame: Mapping[str, Any],
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        *,
        command_id: str | None = None,
    ) -> AckFrame:
        """Send any command frame and wait for its ``ack``.

        The id comes from ``command_id``, else ``frame["id"]``, else a new one. Raises
        ``CommandError`` on an ``error`` frame, ``TimeoutError`` after ``timeout_s``
        (resend with the same id to retry safely), ``TetherError`` if the client stopped.
        """
        body = dict(frame)
        body["id"] = command_id or body.get("id") or new_command_id()
        answer = await self._request(str(body["id"]), body, timeout_s)
        if not isinstance(answer, AckFrame):
            raise TypeError(f"expected an ack, got {answer.type}")
        return answer

    async def _request(self, key: str, body: dict[str, Any], timeout_s: float) -> Answer:
        self._raise_if_stopped()
        pending = self._pending.add(key, json.dumps(body))
        try:
            async with asyncio.timeout(timeout_s):
                # Not connected: the reconnect re-sends every pending command.
                if (ws := self._link.ws) is not None:
                    await send_quietly(ws, pending.text)
                return await pending.future
        finally:
            self._pending.remove(key, pending)

    def _raise_if_stopped(self) -> None:
        if self._link.failure is not None:
            raise self._link.failure
        if self._task is None:
            raise RuntimeError("not connected: use `async with TetherClient(...)`")

    # ------------------------------------------------------------------ events

    async def next_event(self, timeout_s: float = DEFAULT_EVENT_TIMEOUT_S) -> EventFrame:
        """The next applied event; raises the client's failure once the stream ended."""
        async with asyncio.timeout(timeout_s):
            return await self._inbox.get()

    async def events(
        self, idle_timeout_s: float = DEFAULT_EVENT_TIMEOUT_S
    ) -> AsyncIterator[EventFrame]:
        """Applied events in order, shared with ``next_event`` and ``wait_for``.

        Ends after ``close()``; raises ``TimeoutError`` when none arrives for
        ``idle_timeout_s``, or the failure that stopped the client.
        """
        while True:
            try:
                event = await self.next_event(idle_timeout_s)
            except ClientClosedError:
                return
            yield event

    async def wait_for(
        self,
        predicate: Callable[[EventFrame], bool],
        timeout_s: float = DEFAULT_EVENT_TIMEOUT_S,
    ) -> EventFrame:
        """Consume events until one matches ``predicate`` and return it.

        The events skipped on the way leave the queue (``state.events`` keeps them).
        """
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self._inbox.get()
                if predicate(event):
                    return event

    async def wait_for_event(
        self,
        kind: str,
        *,
        run_id: str | None = None,
        timeout_s: float = DEFAULT_EVENT_TIMEOUT_S,
    ) -> EventFrame:
        """``wait_for`` the next event of ``kind`` (and of ``run_id`` when given)."""

        def matches(event: EventFrame) -> bool:
            return event.event == kind and (run_id is None or event.run_id == run_id)

        return await self.wait_for(matches, timeout_s)

    # ------------------------------------------------------------------ stopping

    async def _stop_reader(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self._close_timeout_s + 1.0)
        if not done:
            self._link.log.error("reader task did not stop in time")


# ---------------------------------------------------------------------- helpers


def _with_run(kind: str, run_id: str | None) -> dict[str, Any]:
    return {"type": kind} if run_id is None else {"type": kind, "run_id": run_id}


def _copy(create: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(create) if create is not None else None
