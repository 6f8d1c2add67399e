"""The WebSocket protocol against a real uvicorn: streaming, fan-out, resume, dedupe, policies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.harness import Running, make_settings, raw_connect, recv, recv_until, serve


@pytest.fixture
async def server(sqlite_url: str) -> AsyncIterator[Running]:
    async with serve(make_settings(sqlite_url)) as running:
        yield running


def is_event(kind: str) -> Any:
    return lambda f: f.get("type") == "event" and f.get("event") == kind


def events_of(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for frame in frames:
        if frame["type"] == "event":
            out.append(frame)
        elif frame["type"] == "events":
            out.extend(frame["events"])
    return out


def reaches(frame: dict[str, Any], seq: int) -> bool:
    events = events_of([frame])
    return bool(events) and events[-1]["seq"] >= seq


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["delta"] for e in events if e["event"] == "text.delta")


async def send(ws: Any, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def test_stream_a_run_to_completion(server: Running) -> None:
    ws, (welcome, snapshot) = await raw_connect(server)
    assert welcome["type"] == "welcome"
    assert (welcome["recovered"], welcome["user"], welcome["head_seq"]) == (False, "local", 1)
    assert snapshot["type"] == "snapshot"
    assert snapshot["as_of_seq"] == 1
    await send(ws, {"type": "message", "id": "c1", "content": "/stream 30 2"})
    frames = await recv_until(ws, is_event("run.completed"))
    acks = [f for f in frames if f["type"] == "ack"]
    assert len(acks) == 1
    assert acks[0]["id"] == "c1"
    assert acks[0]["duplicate"] is False
    run_id = acks[0]["result"]["run_id"]
    events = events_of(frames)
    assert [e["seq"] for e in events] == list(range(2, 2 + len(events)))
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["message.user", "run.started"]
    assert kinds[-2:] == ["message.assistant", "run.completed"]
    expected = " ".join(f"t{i}" for i in range(1, 31))
    assert text_of(events) == expected
    assert events[-2]["data"]["content"] == expected
    assert all(e["run_id"] == run_id for e in events)
    assert events[-1]["data"]["usage"]["output_tokens"] == 30
    await ws.close()


async def test_two_connections_see_identical_sequences(server: Running) -> None:
    first, (welcome, _) = await raw_connect(server)
    second, _ = await raw_connect(server, {"type": "hello", "session_id": welcome["session_id"]})
    await send(first, {"type": "message", "id": "c1", "content": "/stream 40"})
    a, b = await asyncio.gather(
        recv_until(first, is_event("run.completed")), recv_until(second, is_event("run.completed"))
    )
    seq_a = [(e["seq"], e["event"], e["data"]) for e in events_of(a)]
    seq_b = [(e["seq"], e["event"], e["data"]) for e in events_of(b)]
    assert seq_a == seq_b
    assert [s for s, _, _ in seq_a] == list(range(2, 2 + len(seq_a)))
    assert not [f for f in b if f["type"] == "ack"], "the ack goes only to the sender"
    await first.close()
    await second.close()


async def test_duplicate_command_id_gives_one_run(server: Running) -> None:
    ws, (welcome, _) = await raw_connect(server)
    await send(ws, {"type": "message", "id": "same", "content": "/stream 3"})
    frames = await recv_until(ws, is_event("run.completed"))
    original = next(f for f in frames if f["type"] == "ack")
    for _ in range(3):
        await send(ws, {"type": "message", "id": "same", "content": "/stream 3"})
        again = await recv(ws)
        assert again == {**original, "duplicate": True}
    other, _ = await raw_connect(server, {"type": "hello", "session_id": welcome["session_id"]})
    await send(other, {"type": "message", "id": "same", "content": "different text"})
    assert (await recv(other))["duplicate"] is True
    runs = await server.engine.store.list_runs(welcome["session_id"], 100)
    assert len(runs) == 1
    await ws.close()
    await other.close()


async def test_resume_sends_exactly_the_missing_events(server: Running) -> None:
    ws, (welcome, _) = await raw_connect(server)
    await send(ws, {"type": "message", "id": "c1", "content": "/stream 20"})
    frames = await recv_until(ws, is_event("run.completed"))
    seen = events_of(frames)
    cursor = seen[4]["seq"]
    await ws.close()
    resume = {
        "type": "hello",
        "session_id": welcome["session_id"],
        "resume": {"epoch": welcome["epoch"], "seq": cursor},
    }
    again, (welcome2,) = await raw_connect(server, resume)
    assert welcome2["recovered"] is True
    head = welcome2["head_seq"]
    replayed = events_of(await recv_until(again, lambda f: reaches(f, head)))
    assert [e["seq"] for e in replayed] == list(range(cursor + 1, head + 1))
    assert [e["data"] for e in replayed] == [e["data"] for e in seen if e["seq"] > cursor]
    await again.close()


@pytest.mark.parametrize("bad", ["wrong-epoch", "ahead"])
async def test_unservable_cursor_gets_a_snapshot(server: Running, bad: str) -> None:
    ws, (welcome, _) = await raw_connect(server)
    await send(ws, {"type": "message", "id": "c1", "content": "/stream 5"})
    await recv_until(ws, is_event("run.completed"))
    await ws.close()
    cursor = (
        {"epoch": "other", "seq": 2}
        if bad == "wrong-epoch"
        else {"epoch": welcome["epoch"], "seq": 10_000}
    )
    again, (welcome2, snapshot) = await raw_connect(
        server, {"type": "hello", "session_id": welcome["session_id"], "resume": cursor}
    )
    assert welcome2["recovered"] is False
    assert snapshot["type"] == "snapshot"
    assert snapshot["as_of_seq"] == welcome2["head_seq"]
    roles = [(m["role"], m["content"]) for m in snapshot["messages"]]
    assert roles == [("user", "/stream 5"), ("assistant", "t1 t2 t3 t4 t5")]
    await again.close()


async def test_too_far_behind_gets_a_snapshot(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_replay_events=3)) as server:
        ws, (welcome, _) = await raw_connect(server)
        await send(ws, {"type": "message", "id": "c1", "content": "/stream 10"})
        await recv_until(ws, is_event("run.completed"))
        await ws.close()
        hello = {
            "type": "hello",
            "session_id": welcome["session_id"],
            "resume": {"epoch": welcome["epoch"], "seq": 1},
        }
        again, (welcome2, snapshot) = await raw_connect(server, hello)
        assert welcome2["recovered"] is False
        assert snapshot["type"] == "snapshot"
        await again.close()


async def test_busy_policies(server: Running) -> None:
    ws, (welcome, _) = await raw_connect(server)
    ids: dict[str, str] = {}
    for i in range(3):
        await send(
            ws, {"type": "message", "id": f"q{i}", "content": f"/stream 4 {30 if i == 0 else 1}"}
        )
    collected: list[dict[str, Any]] = []
    completed: list[str] = []
    async with asyncio.timeout(15):
        while len(completed) < 3:
            frame = await recv(ws)
            collected.append(frame)
            if frame["type"] == "ack":
                ids[frame["id"]] = frame["result"]["run_id"]
            for event in events_of([frame]):
                if event["event"] == "run.completed":
                    completed.append(event["run_id"])
    queued = [e for e in events_of(collected) if e["event"] == "run.queued"]
    assert [e["data"]["position"] for e in queued] == [1, 2]
    assert completed == [ids["q0"], ids["q1"], ids["q2"]], "queued runs start in order"
    started = [e["run_id"] for e in events_of(collected) if e["event"] == "run.started"]
    assert started == completed
    # reject: busy while a run is active
    await send(ws, {"type": "message", "id": "long", "content": "/stream 50 50"})
    await recv_until(ws, is_event("run.started"))
    await send(ws, {"type": "message", "id": "r1", "content": "hi", "policy": "reject"})
    busy = await recv_until(ws, lambda f: f["type"] == "error")
    assert (busy[-1]["code"], busy[-1]["id"]) == ("busy", "r1")
    # interrupt: the active run is cancelled, then this one starts
    await send(ws, {"type": "message", "id": "i1", "content": "/stream 2", "policy": "interrupt"})
    frames = await recv_until(ws, is_event("run.completed"))
    kinds = [(e["event"], e.get("data", {}).get("by")) for e in events_of(frames)]
    assert ("run.cancelled", "interrupt") in kinds
    cancelled_at = kinds.index(("run.cancelled", "interrupt"))
    assert kinds[cancelled_at + 1 :][:2] == [("message.user", None), ("run.started", None)]
    runs = {
        r.command_id: r.status
        for r in await server.engine.store.list_runs(welcome["session_id"], 10)
    }
    assert runs["long"] == "cancelled"
    assert runs["i1"] == "completed"
    assert "r1" not in runs
    await ws.close()


async def test_cancel_active_and_queued_runs(server: Running) -> None:
    ws, (welcome, _) = await raw_connect(server)
    await send(ws, {"type": "message", "id": "a", "content": "/stream 100 50"})
    await send(ws, {"type": "message", "id": "b", "content": "/stream 100 50"})
    frames = await recv_until(ws, lambda f: f["type"] == "ack" and f["id"] == "b")
    run_b = frames[-1]["result"]["run_id"]
    await send(ws, {"type": "cancel", "id": "x1", "run_id": run_b})
    got = await recv_until(ws, lambda f: f["type"] == "ack" and f["id"] == "x1")
    assert is_event("run.cancelled")(got[-2]) or any(
        e["event"] == "run.cancelled" for e in events_of(got)
    )
    await send(ws, {"type": "cancel", "id": "x2"})
    frames = await recv_until(ws, lambda f: f["type"] == "ack" and f["id"] == "x2")
    cancelled = [e for e in events_of(frames) if e["event"] == "run.cancelled"]
    assert cancelled[-1]["data"]["by"] == "local"
    await send(ws, {"type": "cancel", "id": "x2"})
    assert (await recv(ws))["duplicate"] is True
    await send(ws, {"type": "cancel", "id": "x3", "run_id": run_b})
    conflict = await recv(ws)
    assert (conflict["type"], conflict["code"]) == ("error", "conflict")
    await send(ws, {"type": "cancel", "id": "x4"})
    assert (await recv(ws))["code"] == "not_found"
    await send(ws, {"type": "ping", "t": 42})
    assert await recv(ws) == {"type": "pong", "t": 42}
    runs = await server.engine.store.list_runs(welcome["session_id"], 10)
    assert sorted(r.status for r in runs) == ["cancelled", "cancelled"]
    assert server.engine.runs.active == 0
    await ws.close()


async def test_failing_run_reports_run_failed_and_the_session_goes_on(server: Running) -> None:
    ws, (welcome, _) = await raw_connect(server)
    await send(ws, {"type": "message", "id": "f", "content": "/fail the disk is full"})
    frames = await recv_until(ws, is_event("run.failed"))
    failed = events_of(frames)[-1]
    assert failed["data"] == {
        "error": {"code": "demo_failure", "message": "the disk is full"},
        "retryable": True,
    }
    assert text_of(events_of(frames)) == "Working on it…"
    await send(ws, {"type": "message", "id": "g", "content": "/stream 2"})
    assert (
        events_of(await recv_until(ws, is_event("run.completed")))[-1]["event"] == "run.completed"
    )
    session = await server.engine.store.get_session(welcome["session_id"])
    assert session is not None
    assert session.status == "idle"
    runs = await server.engine.store.list_runs(welcome["session_id"], 10)
    assert [(r.command_id, r.status) for r in runs] == [("g", "completed"), ("f", "failed")]
    assert runs[1].error == {"code": "demo_failure", "message": "the disk is full"}
    await ws.close()
