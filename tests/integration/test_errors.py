"""Every error code and close code of DESIGN §3 is produced here, against a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets
from sqlalchemy.ext.asyncio import create_async_engine

from tests.harness import close_code, make_settings, raw_connect, recv, recv_until, serve
from tests.integration.test_ws import events_of, is_event
from tether.store import NewEvent, StoreTx

TOKENS = "tok-alice-123=alice,tok-bob-4567=bob"


async def error_for(ws: Any, frame: str | dict[str, Any]) -> dict[str, Any]:
    """Send ``frame``; return the reply to it, skipping live events of a running stream."""
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    reply = (await recv_until(ws, lambda f: f["type"] not in {"event", "events"}))[-1]
    assert reply["type"] == "error", reply
    return reply


async def test_frame_errors_keep_the_connection_open(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_message_chars=50)) as server:
        ws, _ = await raw_connect(server)
        assert (await error_for(ws, "{nope"))["code"] == "bad_frame"
        invalid = await error_for(ws, {"type": "message", "id": "m1"})
        assert (invalid["code"], invalid["id"]) == ("invalid", "m1")
        assert invalid["details"][0]["loc"] == ["message", "content"]
        assert (await error_for(ws, {"type": "teleport", "id": "t"}))["code"] == "unknown_type"
        big = await error_for(ws, {"type": "message", "id": "b", "content": "x" * 51})
        assert (big["code"], big["id"]) == ("too_large", "b")
        assert (await error_for(ws, {"type": "hello"}))["code"] == "invalid"
        retry = await error_for(ws, {"type": "retry", "id": "r"})
        assert retry["code"] == "not_found"
        await ws.send(json.dumps({"type": "message", "id": "ok", "content": "/stream 2"}))
        frames = await recv_until(ws, is_event("run.completed"))
        assert any(f["type"] == "ack" and f["id"] == "ok" for f in frames)
        head = await server.engine.store.read_events(frames[-1]["session_id"], 0, 100)
        assert [e.seq for e in head] == list(range(1, len(head) + 1))
        await ws.close()


async def test_rate_limited_with_retry_after(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, frames_per_s=1, frame_burst=3)) as server:
        ws, _ = await raw_connect(server)
        for _ in range(3):
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
        limited = await error_for(ws, {"type": "ping"})
        assert limited["code"] == "rate_limited"
        assert 1 <= limited["retry_after_ms"] <= 1000
        await ws.close()


async def test_quota_exceeded_and_busy(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_active_runs_per_user=1)) as server:
        ws, _ = await raw_connect(server)
        await ws.send(json.dumps({"type": "message", "id": "long", "content": "/stream 100 50"}))
        await recv_until(ws, lambda f: f["type"] == "ack")
        other, _ = await raw_connect(server)
        quota = await error_for(other, {"type": "message", "id": "q", "content": "hi"})
        assert (quota["code"], quota["id"]) == ("quota_exceeded", "q")
        busy = await error_for(
            ws, {"type": "message", "id": "b", "content": "x", "policy": "reject"}
        )
        assert busy["code"] == "busy"
        await ws.close()
        await other.close()


async def test_not_found_and_conflict(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server:
        ws, _ = await raw_connect(server)
        assert (await error_for(ws, {"type": "cancel", "id": "c"}))["code"] == "not_found"
        await ws.send(json.dumps({"type": "message", "id": "m", "content": "/stream 1"}))
        frames = await recv_until(ws, is_event("run.completed"))
        run_id = frames[-1]["run_id"]
        assert next(f for f in frames if f["type"] == "ack")["id"] == "m"
        conflict = await error_for(ws, {"type": "cancel", "id": "c2", "run_id": run_id})
        assert conflict["code"] == "conflict"
        missing = await error_for(ws, {"type": "cancel", "id": "c3", "run_id": "r-nope"})
        assert missing["code"] == "not_found"
        await ws.close()


async def test_forbidden_for_a_foreign_origin(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server:
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            refused = await http.post(
                "/v1/sessions", json={}, headers={"Origin": "https://evil.example"}
            )
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "forbidden"
            own = await http.post("/v1/sessions", json={}, headers={"Origin": server.http})
            assert own.status_code == 201
        with pytest.raises(websockets.InvalidStatus) as caught:
            await websockets.connect(server.ws, origin="https://evil.example")  # type: ignore[arg-type]
        assert caught.value.response.status_code == 403


async def test_internal_error_when_the_store_fails(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server:
        ws, (welcome, _) = await raw_connect(server)
        engine = create_async_engine(sqlite_url)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP TABLE commands"))
        await engine.dispose()
        internal = await error_for(ws, {"type": "message", "id": "m", "content": "hi"})
        assert (internal["code"], internal["id"]) == ("internal", "m")
        await ws.send(json.dumps({"type": "ping", "t": 1}))
        assert (await recv(ws))["type"] == "pong"
        events = await server.engine.store.read_events(welcome["session_id"], 0, 10)
        assert [e.kind for e in events] == ["session.created"], "nothing half-written"
        await ws.close()


# ---------------------------------------------------------------- close codes


async def test_close_codes_of_the_handshake(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, auth="token", api_tokens=TOKENS, hello_timeout_s=0.3)
    async with serve(settings) as server:
        silent = await websockets.connect(server.ws)
        assert await close_code(silent) == 4408
        for first in ("not json", json.dumps({"type": "ping"})):
            ws = await websockets.connect(server.ws)
            await ws.send(first)
            assert await close_code(ws) == 4400
        ws, _ = await raw_connect(server, {"type": "hello"})
        assert await close_code(ws) == 4401
        ws, _ = await raw_connect(server, {"type": "hello", "token": "tok-wrong-999"})
        assert await close_code(ws) == 4401
        alice, (welcome, _) = await raw_connect(server, {"type": "hello", "token": "tok-alice-123"})
        assert welcome["user"] == "alice"
        session = welcome["session_id"]
        bob, _ = await raw_connect(
            server,
            {"type": "hello", "session_id": session},
            additional_headers={"Authorization": "Bearer tok-bob-4567"},
        )
        assert await close_code(bob) == 4403
        ghost, _ = await raw_connect(
            server, {"type": "hello", "token": "tok-bob-4567", "session_id": "s-does-not-exist"}
        )
        assert await close_code(ghost) == 4404
        await alice.close()


async def test_policy_and_size_closes(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, max_bad_frames=3, max_frame_bytes=2048)
    async with serve(settings) as server:
        ws, _ = await raw_connect(server)
        for _ in range(3):
            assert (await error_for(ws, "garbage"))["code"] == "bad_frame"
        await ws.send("garbage")
        assert await close_code(ws) == 1008
        ws, _ = await raw_connect(server)
        await ws.send(json.dumps({"type": "ping", "t": "x" * 4096}))
        assert await close_code(ws) == 1009


async def test_too_many_connections_for_a_session(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, max_connections_per_session=2)) as server:
        first, (welcome, _) = await raw_connect(server)
        hello = {"type": "hello", "session_id": welcome["session_id"]}
        second, _ = await raw_connect(server, hello)
        third, frames = await raw_connect(server, hello)
        assert frames == [] or frames[0].get("type") != "welcome"
        assert await close_code(third) == 1013
        await second.close()
        fourth, (welcome4, _) = await raw_connect(server, hello)
        assert welcome4["type"] == "welcome"
        await first.close()
        await fourth.close()


async def test_slow_consumer_closed_with_4008_then_resumes(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, outbound_queue_frames=8)) as server:
        ws, (welcome, _) = await raw_connect(server)
        session_id = welcome["session_id"]

        async def burst(tx: StoreTx) -> None:
            await tx.append(
                session_id, [NewEvent("progress", {"label": f"step {i}"}) for i in range(50)]
            )

        await server.engine.store.write(burst)
        assert await close_code(ws) == 4008
        hello = {
            "type": "hello",
            "session_id": session_id,
            "resume": {"epoch": welcome["epoch"], "seq": welcome["head_seq"]},
        }
        again, (welcome2,) = await raw_connect(server, hello)
        assert welcome2["recovered"] is True
        events = events_of(
            await recv_until(
                again, lambda f: events_of([f])[-1:] != [] and events_of([f])[-1]["seq"] == 51
            )
        )
        assert [e["data"]["label"] for e in events] == [f"step {i}" for i in range(50)]
        await again.close()


async def test_deleted_session_closes_sockets_with_4404(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server:
        ws, (welcome, _) = await raw_connect(server)
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            assert (await http.delete(f"/v1/sessions/{welcome['session_id']}")).status_code == 204
        assert await close_code(ws) == 4404


async def test_server_shutdown_closes_with_a_resume_code(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server:
        ws, _ = await raw_connect(server)
        code_task = asyncio.create_task(close_code(ws, timeout_s=20))
    assert await code_task in {1001, 1012}
