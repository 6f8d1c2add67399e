"""Rate limits, quotas and usage against a real server: per-user buckets for messages, run
starts and connections; the open-socket cap; daily quotas that hold under concurrency;
``GET /v1/usage``; a Redis limiter shared by two instances; a flood that spares others."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.harness import close_code, make_settings, raw_connect, recv, recv_until, serve
from tests.integration.test_ws import is_event, send
from tests.services import REDIS_URL, port_open, require

TOKENS = "tok-alice-123=alice,tok-bob-4567=bob"
ALICE = {"Authorization": "Bearer tok-alice-123"}
BOB = {"Authorization": "Bearer tok-bob-4567"}
GENEROUS = {"messages_per_s": 1000, "message_burst": 1000, "run_starts_per_s": 1000,
            "run_start_burst": 1000, "connects_per_s": 1000, "connect_burst": 1000}  # fmt: skip


def hello(token: str = "tok-alice-123", **extra: Any) -> dict[str, Any]:
    return {"type": "hello", "token": token, **extra}


async def replies(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` acks and errors (events in between are skipped)."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        frame = await recv(ws)
        if frame["type"] in {"ack", "error"}:
            out.append(frame)
    return out


async def test_message_rate_limit_on_the_socket_and_rest(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, auth="token", api_tokens=TOKENS, messages_per_s=0.5, message_burst=3
    )
    async with serve(settings) as server:
        ws, (welcome, _) = await raw_connect(server, hello())
        for i in range(4):
            await send(ws, {"type": "message", "id": f"m{i}", "content": "/stream 1"})
        answers = await replies(ws, 4)
        assert [a["type"] for a in answers] == ["ack", "ack", "ack", "error"]
        limited = answers[3]
        assert (limited["code"], limited["id"]) == ("rate_limited", "m3")
        assert 1000 < limited["retry_after_ms"] <= 2000
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            sid = welcome["session_id"]
            rest = await http.post(
                f"/v1/sessions/{sid}/messages", json={"id": "r1", "content": "x"}, headers=ALICE
            )
            assert rest.status_code == 429
            assert rest.headers["retry-after"] == "2"
            assert rest.headers["content-type"] == "application/problem+json"
            assert rest.json()["code"] == "rate_limited"
            other = await http.post("/v1/sessions", json={}, headers=BOB)
            bob_sent = await http.post(
                f"/v1/sessions/{other.json()['id']}/messages",
                json={"id": "b1", "content": "x"},
                headers=BOB,
            )
            assert bob_sent.status_code == 202, "bob has his own bucket"
            log = await http.get(f"/v1/sessions/{sid}/events", headers=ALICE)
        users = [e for e in log.json()["events"] if e["event"] == "message.user"]
        assert [e["data"]["command_id"] for e in users] == ["m0", "m1", "m2"], "refused = unlogged"
        metrics = server.engine.metrics.render().decode()
        assert 'tether_rate_limited_total{scope="messages"} 2.0' in metrics
        await ws.close()


async def test_run_starts_are_limited_separately(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, run_starts_per_s=0.01, run_start_burst=2)
    async with serve(settings) as server:
        ws, _ = await raw_connect(server)
        for i in range(3):
            await send(ws, {"type": "message", "id": f"m{i}", "content": "/stream 1"})
        answers = await replies(ws, 3)
        assert [a.get("code") for a in answers] == [None, None, "rate_limited"]
        assert "runs" in answers[2]["message"]
        await ws.close()


async def test_new_connections_are_rate_limited_per_user(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, auth="token", api_tokens=TOKENS, connects_per_s=0.01, connect_burst=2
    )
    async with serve(settings) as server:
        first, _ = await raw_connect(server, hello())
        second, _ = await raw_connect(server, hello())
        third, frames = await raw_connect(server, hello())
        assert [(f["type"], f["code"]) for f in frames] == [("error", "rate_limited")]
        assert frames[0]["retry_after_ms"] > 1000
        assert await close_code(third) == 1013
        bob, (welcome, _) = await raw_connect(server, hello("tok-bob-4567"))
        assert welcome["user"] == "bob"
        for ws in (first, second, bob):
            await ws.close()


async def test_open_connections_are_capped_per_user(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, auth="token", api_tokens=TOKENS, max_connections_per_user=2, **GENEROUS
    )
    async with serve(settings) as server:
        first, (welcome, _) = await raw_connect(server, hello())
        second, _ = await raw_connect(server, hello(session_id=welcome["session_id"]))
        third, frames = await raw_connect(server, hello())
        assert [(f["type"], f["code"]) for f in frames] == [("error", "quota_exceeded")]
        assert await close_code(third) == 1013
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            usage = (await http.get("/v1/usage", headers=ALICE)).json()
            assert (usage["open_connections"], usage["quotas"]["connections"]) == (2, 2)
            await second.close()
            await close_code(second)
            # The server releases the slot when its side of the close ends; nothing outside
            # can await that, so poll the usage endpoint under a deadline.
            async with asyncio.timeout(5):
                while (await http.get("/v1/usage", headers=ALICE)).json()["open_connections"] > 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        fourth, (welcome4, _) = await raw_connect(server, hello())
        assert welcome4["type"] == "welcome"
        for ws in (first, fourth):
            await ws.close()


async def test_daily_run_quota_holds_under_20_concurrent_attempts(store_url: str) -> None:
    user = f"quota-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        store_url,
        auth="token",
        api_tokens=f"tok-{user}={user}",
        max_runs_per_day=5,
        max_active_runs_per_user=100,
        **GENEROUS,
    )
    auth = {"Authorization": f"Bearer tok-{user}"}
    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http, timeout=20) as http,
    ):
        sids = [
            (await http.post("/v1/sessions", json={}, headers=auth)).json()["id"] for _ in range(20)
        ]
        sent = await asyncio.gather(
            *(
                http.post(
                    f"/v1/sessions/{sid}/messages", json={"id": "m", "content": "hi"}, headers=auth
                )
                for sid in sids
            )
        )
        statuses = sorted(r.status_code for r in sent)
        assert statuses == [202] * 5 + [429] * 15
        refused = [r.json() for r in sent if r.status_code == 429]
        assert {r["code"] for r in refused} == {"quota_exceeded"}
        assert all(int(r.headers["retry-after"]) >= 1 for r in sent if r.status_code == 429)
        runs = [await server.engine.store.list_runs(sid, 10) for sid in sids]
        assert sum(len(r) for r in runs) == 5, "exactly the allowed number of runs exist"
        usage = (await http.get("/v1/usage", headers=auth)).json()
        assert (usage["usage"]["runs"], usage["quotas"]["runs_per_day"]) == (5, 5)
        ws, _ = await raw_connect(server, hello(f"tok-{user}", session_id=sids[0]))
        await send(ws, {"type": "message", "id": "more", "content": "hi"})
        [answer] = await replies(ws, 1)
        assert (answer["code"], answer["id"]) == ("quota_exceeded", "more")
        await ws.close()


async def test_token_quota_and_the_usage_endpoint(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, auth="token", api_tokens=TOKENS, max_tokens_per_day=5)
    async with (
        serve(settings) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as http,
    ):
        empty = (await http.get("/v1/usage", headers=ALICE)).json()
        assert empty["usage"] == {
            "runs": 0, "input_tokens": 0, "output_tokens": 0, "requests": 0, "tokens": 0
        }  # fmt: skip
        assert empty["quotas"] == {
            "runs_per_day": None, "tokens_per_day": 5, "active_runs": 8, "connections": 64
        }  # fmt: skip
        ws, _ = await raw_connect(server, hello())
        await send(ws, {"type": "message", "id": "m1", "content": "/stream 10"})
        done = await recv_until(ws, is_event("run.completed"))
        reported = done[-1]["data"]["usage"]
        used = (await http.get("/v1/usage", headers=ALICE)).json()
        assert used["usage"]["runs"] == 1
        assert used["usage"]["input_tokens"] == reported["input_tokens"] > 0
        assert used["usage"]["output_tokens"] == reported["output_tokens"] > 0
        assert used["usage"]["tokens"] >= 5
        await send(ws, {"type": "message", "id": "m2", "content": "again"})
        [refused] = await replies(ws, 1)
        assert (refused["code"], refused["id"]) == ("quota_exceeded", "m2")
        bob = (await http.get("/v1/usage", headers=BOB)).json()
        assert bob["usage"]["runs"] == 0, "usage is per user"
        assert (await http.get("/v1/usage")).status_code == 401
        await ws.close()


async def test_redis_limiter_shares_one_budget_between_two_instances(sqlite_url: str) -> None:
    require(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    user = f"shared-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        sqlite_url,
        auth="token",
        api_tokens=f"tok-{user}={user}",
        limiter_url=REDIS_URL,
        messages_per_s=0.001,
        message_burst=4,
    )
    async with serve(settings) as one, serve(settings) as two:
        first, (welcome, _) = await raw_connect(one, hello(f"tok-{user}"))
        second, _ = await raw_connect(two, hello(f"tok-{user}", session_id=welcome["session_id"]))
        answers = []
        for i in range(10):
            ws = first if i % 2 else second
            await send(ws, {"type": "message", "id": f"m{i}", "content": "/stream 1"})
            answers += await replies(ws, 1)
        assert [a["type"] for a in answers].count("ack") == 4
        assert {a["code"] for a in answers if a["type"] == "error"} == {"rate_limited"}
        await first.close()
        await second.close()


async def test_a_flooding_user_is_limited_while_another_users_run_completes(
    sqlite_url: str,
) -> None:
    settings = make_settings(sqlite_url, auth="token", api_tokens=TOKENS, frames_per_s=1000,
                             frame_burst=1000)  # fmt: skip
    async with serve(settings) as server:
        flooder, _ = await raw_connect(server, hello())
        victim, _ = await raw_connect(server, hello("tok-bob-4567"))
        await send(victim, {"type": "message", "id": "b1", "content": "/stream 20 5"})
        for i in range(200):
            await flooder.send(
                json.dumps({"type": "message", "id": f"f{i}", "content": "/stream 5"})
            )
        frames = await recv_until(victim, is_event("run.completed"), timeout_s=20)
        assert not [f for f in frames if f["type"] == "error"]
        flood = await replies(flooder, 200)
        codes = [f.get("code") for f in flood]
        assert "rate_limited" in codes
        assert codes.count(None) <= settings.message_burst
        await flooder.close()
        await victim.close()


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 1000):
        yield body[i : i + 1000]


async def test_rest_bodies_are_capped_like_frames(sqlite_url: str) -> None:
    json_type = {"content-type": "application/json"}
    async with (
        serve(make_settings(sqlite_url, max_frame_bytes=4096)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as http,
    ):
        big = json.dumps({"title": "t", "metadata": {"k": "v" * 5000}}).encode()
        declared = await http.post("/v1/sessions", content=big, headers=json_type)
        assert (declared.status_code, declared.json()["code"]) == (413, "too_large")
        chunked = await http.post("/v1/sessions", content=chunks(big), headers=json_type)
        assert chunked.status_code == 413
        assert chunked.headers["content-type"] == "application/problem+json"
        small = json.dumps({"title": "chunked ok"}).encode()
        fine = await http.post("/v1/sessions", content=chunks(small), headers=json_type)
        assert (fine.status_code, fine.json()["title"]) == (201, "chunked ok")
        listed = (await http.get("/v1/sessions")).json()["items"]
        assert [s["title"] for s in listed] == ["chunked ok"], "nothing half-created"
