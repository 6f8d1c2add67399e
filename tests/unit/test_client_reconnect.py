"""TetherClient against a small scripted WebSocket server on 127.0.0.1, port 0.

The fake server speaks protocol v1 the way DESIGN §3 says the real one does (welcome,
replay after a cursor or a snapshot, idempotent command ids) and lets each test script
faults: dropped acks, close codes, lost frames, refused upgrades.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tether.client import (
    ClientClosedError,
    CommandError,
    ConnectError,
    TetherClient,
    TetherClosed,
)
from tether.protocol import encode
from tether.protocol.errors import ErrorCode
from tether.protocol.frames import (
    AckFrame,
    ErrorFrame,
    EventFrame,
    EventsFrame,
    Limits,
    PongFrame,
    SnapshotFrame,
    WelcomeFrame,
)

READ_TIMEOUT_S = 5.0
LIMITS = Limits(
    max_frame_bytes=1_048_576,
    max_message_chars=100_000,
    max_command_id_chars=64,
    hello_timeout_s=10,
)


class FakeServer:
    """One session, one epoch, an in-memory log; faults are set by the test."""

    def __init__(self) -> None:
        self.url = ""
        self.session_id, self.epoch = "s1", "e1"
        self.log: list[EventFrame] = []
        self.hellos: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.effects = 0
        self.hold_acks = False
        self.replay_overlap = 0
        self.reject_hellos: list[int] = []
        self.http_status: int | None = None
        self.silent = False
        self.auth_headers: list[str | None] = []
        self.live: ServerConnection | None = None
        self._hello_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._command_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    # ---------------------------------------------------------------- test API

    async def next_hello(self) -> dict[str, Any]:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await self._hello_queue.get()

    async def next_command(self) -> dict[str, Any]:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return await self._command_queue.get()

    def append(
        self, kind: str, data: dict[str, Any] | None = None, *, run_id: str | None = None
    ) -> EventFrame:
        """Log one event (not sent: live sends are up to the caller)."""
        frame = EventFrame(
            seq=len(self.log) + 1,
            epoch=self.epoch,
            ts="2025-01-01T00:00:00Z",
            session_id=self.session_id,
            run_id=run_id,
            event=kind,
            data=data or {},
        )
        self.log.append(frame)
        return frame

    async def close_live(self, code: int, reason: str = "") -> None:
        assert self.live is not None
        await self.live.close(code, reason)

    # ---------------------------------------------------------------- server side

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.http_status is None:
            return None
        return connection.respond(self.http_status, "refused\n")

    async def handler(self, ws: ServerConnection) -> None:
        try:
            await self._serve(ws)
        except ConnectionClosed:
            return

    async def _serve(self, ws: ServerConnection) -> None:
        async with asyncio.timeout(READ_TIMEOUT_S):
            hello = json.loads(await ws.recv())
        self.hellos.append(hello)
        self._hello_queue.put_nowait(hello)
        if self.reject_hellos:
            await ws.close(self.reject_hellos.pop(0), "scripted")
            return
        if self.silent:
            await ws.wait_closed()
            return
        self.live = ws
        await self._welcome(ws, hello.get("resume"))
        async for text in ws:
            await self._on_command(ws, json.loads(text))

    async def _welcome(self, ws: ServerConnection, cursor: dict[str, Any] | None) -> None:
        recovered = cursor is not None and cursor["epoch"] == self.epoch
        welcome = WelcomeFrame(
            session_id=self.session_id,
            epoch=self.epoch,
            head_seq=len(self.log),
            recovered=recovered,
            user="alice",
            server_id="fake",
            limits=LIMITS,
        )
        await ws.send(encode(welcome))
        if cursor is not None and recovered:
            after = max(0, cursor["seq"] - self.replay_overlap)
            replay = [frame for frame in self.log if frame.seq > after]
            if replay:
                await ws.send(encode(EventsFrame(events=replay)))
            return
        snapshot = SnapshotFrame(
            as_of_seq=len(self.log), session={}, messages=[], runs=[], interrupts=[]
        )
        await ws.send(encode(snapshot))

    async def _on_command(self, ws: ServerConnection, frame: dict[str, Any]) -> None:
        self.received.append(frame)
        self._command_queue.put_nowait(frame)
        if frame["type"] == "ping":
            await ws.send(encode(PongFrame(t=frame.get("t"))))
        elif frame["id"] in self.results:
            result = self.results[frame["id"]]
            await ws.send(encode(AckFrame(id=frame["id"], duplicate=True, result=result)))
        elif frame.get("content") == "busy":
            error = ErrorFrame(code=ErrorCode.BUSY, message="a run is active", id=frame["id"])
            await ws.send(encode(error))
        else:
            await self._run(ws, frame)

    async def _run(self, ws: ServerConnection, frame: dict[str, Any]) -> None:
        run_id, message_id = f"r{len(self.results) + 1}", f"m{len(self.results) + 1}"
        self.results[frame["id"]] = {"run_id": run_id}
        self.effects += 1
        steps: list[tuple[str, dict[str, Any]]] = [
            ("message.user", {"message_id": "u", "content": frame.get("content")}),
            ("run.started", {"run_id": run_id, "message_id": message_id, "attempt": 1}),
            ("text.delta", {"message_id": message_id, "delta": "Hel"}),
            ("text.delta", {"message_id": message_id, "delta": "lo"}),
            ("message.assistant", {"message_id": message_id, "content": "Hello!"}),
            ("run.completed", {}),
        ]
        events = [self.append(kind, data, run_id=run_id) for kind, data in steps]
        for event in events:
            await ws.send(encode(event))
        if not self.hold_acks:
            await ws.send(encode(AckFrame(id=frame["id"], result=self.results[frame["id"]])))


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    async with serve(
        fake.handler, "127.0.0.1", 0, process_request=fake.process_request
    ) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/v1/ws"
        yield fake


def client_for(server: FakeServer, **options: Any) -> TetherClient:
    options.setdefault("backoff_base_s", 0.01)
    options.setdefault("hello_timeout_s", READ_TIMEOUT_S)
    return TetherClient(server.url, **options)


async def run_once(client: TetherClient, content: str = "hi") -> AckFrame:
    """Send a message and consume its events up to run.completed."""
    ack = await client.send_message(content, timeout_s=READ_TIMEOUT_S)
    assert ack.result is not None
    await client.wait_for_event("run.completed", run_id=ack.result["run_id"], timeout_s=5)
    return ack


# ---------------------------------------------------------------------- first connection


async def test_first_hello_creates_a_session_without_cursor(server: FakeServer) -> None:
    create = {"title": "t", "agent": "demo"}
    async with client_for(server, create=create, token="tok") as client:
        hello = await server.next_hello()
        assert hello == {"type": "hello", "create": create}
        assert server.auth_headers == ["Bearer tok"]
        assert client.session_id == "s1"
        assert client.welcome is not None
        assert client.welcome.recovered is False
        assert client.state.snapshot is not None
        assert client.state.cursor == ("e1", 0)


async def test_token_can_travel_in_the_hello(server: FakeServer) -> None:
    async with client_for(server, token="tok", token_in="hello", session_id="s1"):
        hello = await server.next_hello()
        assert hello == {"type": "hello", "token": "tok", "session_id": "s1"}
        assert server.auth_headers == [None]


async def test_message_round_trip_folds_text(server: FakeServer) -> None:
    async with client_for(server) as client:
        ack = await run_once(client)
        assert ack.duplicate is False
        assert ack.result == {"run_id": "r1"}
        assert client.state.text("m1") == "Hello!"
        assert client.state.applied_seqs == [1, 2, 3, 4, 5, 6]


async def test_events_iterator_yields_applied_events_in_order(server: FakeServer) -> None:
    async with client_for(server) as client:
        await client.send_message("hi", timeout_s=READ_TIMEOUT_S)
        seen = []
        async for event in client.events(idle_timeout_s=READ_TIMEOUT_S):
            seen.append(event.seq)
            if event.event == "run.completed":
                break
        assert seen == [1, 2, 3, 4, 5, 6]


async def test_ping_round_trip(server: FakeServer) -> None:
    async with client_for(server) as client:
        rtt_s = await client.ping(timeout_s=READ_TIMEOUT_S)
        assert 0 <= rtt_s < READ_TIMEOUT_S


async def test_error_frame_raises_command_error(server: FakeServer) -> None:
    async with client_for(server) as client:
        with pytest.raises(CommandError) as caught:
            await client.send_message("busy", command_id="c-busy", timeout_s=READ_TIMEOUT_S)
        assert (caught.value.code, caught.value.command_id) == ("busy", "c-busy")


async def test_same_command_id_twice_has_one_effect(server: FakeServer) -> None:
    async with client_for(server) as client:
        first = await client.send_message("hi", command_id="c1", timeout_s=READ_TIMEOUT_S)
        second = await client.send_message("hi", command_id="c1", timeout_s=READ_TIMEOUT_S)
        assert (first.duplicate, second.duplicate) == (False, True)
        assert first.result == second.result
        assert server.effects == 1


async def test_terminal_close_on_hello_raises_at_enter(server: FakeServer) -> None:
    server.reject_hellos = [4401]
    with pytest.raises(TetherClosed) as caught:
        async with client_for(server):
            pytest.fail("the client must not connect")
    assert caught.value.code == 4401
    assert len(server.hellos) == 1


async def test_http_403_on_upgrade_is_terminal(server: FakeServer) -> None:
    server.http_status = 403
    with pytest.raises(TetherClosed) as caught:
        await client_for(server).connect()
    assert caught.value.code == 4403


async def test_no_welcome_in_time_fails_the_first_connect(server: FakeServer) -> None:
    server.silent = True
    with pytest.raises(ConnectError, match="no welcome"):
        await client_for(server, hello_timeout_s=0.2).connect()


async def test_nothing_listening_fails_fast() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = TetherClient(f"ws://127.0.0.1:{port}/v1/ws", open_timeout_s=2)
    with pytest.raises(ConnectError, match="cannot connect"):
        await client.connect()


async def test_slow_reader_loses_oldest_queued_events_not_state(server: FakeServer) -> None:
    async with client_for(server, event_queue_size=2) as client:
        await client.send_message("hi", timeout_s=READ_TIMEOUT_S)  # acked after its events
        assert client.dropped_events == 4
        assert [(await client.next_event(timeout_s=1)).seq for _ in range(2)] == [5, 6]
        assert client.state.applied_seqs == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------------- reconnect and resume


async def test_drop_reconnects_and_resumes_from_the_cursor(server: FakeServer) -> None:
    server.replay_overlap = 3  # the replay repeats events the client already has
    async with client_for(server) as client:
        await server.next_hello()
        await run_once(client)
        missed = [server.append("progress", {"label": "while away"}) for _ in range(2)]
        assert await client.drop()
        hello = await server.next_hello()
        assert hello == {"type": "hello", "session_id": "s1", "resume": {"epoch": "e1", "seq": 6}}
        event = await client.wait_for(lambda event: event.seq == missed[-1].seq, timeout_s=5)
        assert event.data == {"label": "while away"}
        assert client.state.applied_seqs == [1, 2, 3, 4, 5, 6, 7, 8]
        assert client.state.duplicates_dropped == 3
        assert client.reconnects == 1
        assert client.welcome is not None
        assert client.welcome.recovered is True


async def test_pending_command_is_resent_with_same_id_and_acked_once(
    server: FakeServer,
) -> None:
    server.hold_acks = True  # the ack of the first send is "lost" with the connection
    async with client_for(server) as client:
        sending = asyncio.create_task(client.send_message("hi", command_id="cmd-1"))
        first = await server.next_command()
        server.hold_acks = False
        await client.drop()
        second = await server.next_command()
        async with asyncio.timeout(READ_TIMEOUT_S):
            ack = await sending
        assert first["id"] == second["id"] == "cmd-1"
        assert (ack.id, ack.duplicate, ack.result) == ("cmd-1", True, {"run_id": "r1"})
        assert server.effects == 1
        assert [frame["id"] for frame in server.received] == ["cmd-1", "cmd-1"]
        await client.wait_for_event("run.completed", timeout_s=READ_TIMEOUT_S)
        assert client.state.applied_seqs == [1, 2, 3, 4, 5, 6]


async def test_command_sent_while_disconnected_is_delivered(server: FakeServer) -> None:
    async with client_for(server) as client:
        await server.next_hello()
        server.reject_hellos = [1013]  # the first reconnect is refused, the next accepted
        await client.drop()
        ack = await client.send_message("hi", command_id="c-offline", timeout_s=5)
        assert ack.result == {"run_id": "r1"}
        assert [frame["id"] for frame in server.received] == ["c-offline"]
        assert client.reconnects == 1
        assert len(server.hellos) == 3


async def test_new_client_with_old_state_resumes_and_syncs(server: FakeServer) -> None:
    async with client_for(server) as first:
        await server.next_hello()
        await run_once(first)
    server.append("progress", {"label": "while no tab was open"})
    async with client_for(server, state=first.state) as second:
        hello = await server.next_hello()
        assert hello["resume"] == {"epoch": "e1", "seq": 6}
        # connect() waited for the replay: the state is current on entry.
        assert second.state.applied_seqs == [1, 2, 3, 4, 5, 6, 7]
        assert second.welcome is not None
        assert second.welcome.recovered is True


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013, 4008, 4408, 4999])
async def test_retryable_close_reconnects_and_resumes(server: FakeServer, code: int) -> None:
    async with client_for(server) as client:
        await server.next_hello()
        await run_once(client)
        await server.close_live(code, "scripted")
        hello = await server.next_hello()
        assert hello["resume"] == {"epoch": "e1", "seq": 6}
        await client.ping(timeout_s=READ_TIMEOUT_S)  # answered on the new connection
        assert client.reconnects == 1
        await run_once(client, "again")
        assert client.state.applied_seqs == list(range(1, 13))


@pytest.mark.parametrize("code", [1008, 1009, 4400, 4401, 4403, 4404])
async def test_terminal_close_raises_and_does_not_reconnect(server: FakeServer, code: int) -> None:
    async with client_for(server) as client:
        await server.close_live(code, "go away")
        with pytest.raises(TetherClosed) as caught:
            await client.next_event(timeout_s=READ_TIMEOUT_S)
        assert (caught.value.code, caught.value.reason) == (code, "go away")
        assert client.failure is caught.value
        with pytest.raises(TetherClosed):
            await client.send_message("hi")
        assert client.reconnects == 0
        assert len(server.hellos) == 1
        assert not client.connected


async def test_pending_command_fails_on_terminal_close(server: FakeServer) -> None:
    server.hold_acks = True
    async with client_for(server) as client:
        sending = asyncio.create_task(client.send_message("hi"))
        await server.next_command()
        await server.close_live(4403)
        async with asyncio.timeout(READ_TIMEOUT_S):
            with pytest.raises(TetherClosed):
                await sending


async def test_gap_in_live_events_resumes_from_the_cursor(server: FakeServer) -> None:
    async with client_for(server) as client:
        await server.next_hello()
        await run_once(client)
        server.append("progress", {"label": "lost on the wire"})
        skipped_ahead = server.append("progress", {"label": "arrives first"})
        assert server.live is not None
        await server.live.send(encode(skipped_ahead))
        hello = await server.next_hello()
        assert hello["resume"] == {"epoch": "e1", "seq": 6}
        await client.wait_for(lambda event: event.seq == 8, timeout_s=READ_TIMEOUT_S)
        assert client.state.applied_seqs == [1, 2, 3, 4, 5, 6, 7, 8]
        assert client.reconnects == 1


async def test_gives_up_after_the_attempt_limit(server: FakeServer) -> None:
    async with client_for(server, max_reconnect_attempts=2) as client:
        server.reject_hellos = [1013, 1013, 1013]
        await server.close_live(1013)
        with pytest.raises(ConnectError, match="gave up after 2") as caught:
            await client.next_event(timeout_s=READ_TIMEOUT_S)
        assert caught.value.attempts == 2
        assert len(server.hellos) == 3  # the first connection and two attempts
        assert client.reconnects == 0


async def test_terminal_close_during_reconnect_stops(server: FakeServer) -> None:
    async with client_for(server) as client:
        server.reject_hellos = [4404]
        await server.close_live(1012)
        with pytest.raises(TetherClosed) as caught:
            await client.next_event(timeout_s=READ_TIMEOUT_S)
        assert caught.value.code == 4404
        assert len(server.hellos) == 2


# ---------------------------------------------------------------------- closing


async def test_close_is_idempotent_and_ends_every_wait(server: FakeServer) -> None:
    server.hold_acks = True
    client = client_for(server)
    await client.connect()
    sending = asyncio.create_task(client.send_message("hi"))
    await server.next_command()
    await client.close()
    await client.close()
    async with asyncio.timeout(READ_TIMEOUT_S):
        with pytest.raises(ClientClosedError):
            await sending
    queued = [event.seq async for event in client.events(idle_timeout_s=READ_TIMEOUT_S)]
    assert queued == client.state.applied_seqs  # unread events first, then the end
    with pytest.raises(ClientClosedError):
        await client.next_event(timeout_s=READ_TIMEOUT_S)
    with pytest.raises(ClientClosedError):
        await client.ping()
    assert not await client.drop()


async def test_client_cannot_be_used_before_connect(server: FakeServer) -> None:
    client = client_for(server)
    with pytest.raises(RuntimeError, match="not connected"):
        await client.ping()
