"""Command semantics shared by the socket and REST: a repeated id is answered from its
stored result before any rate limit is spent, and a command whose caller goes away while
it commits still has its full effect (a committed run is launched)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.harness import make_settings, raw_connect, serve
from tests.integration.test_limits import ALICE, TOKENS, hello, replies
from tests.integration.test_ws import send
from tether.client import TetherClient
from tether.store import StoreTx


async def test_a_repeated_id_is_a_duplicate_even_when_the_rate_limit_is_spent(
    sqlite_url: str,
) -> None:
    settings = make_settings(
        sqlite_url, auth="token", api_tokens=TOKENS, messages_per_s=0.01, message_burst=1
    )
    async with serve(settings) as server:
        ws, (welcome, _) = await raw_connect(server, hello())
        for _ in range(3):
            await send(ws, {"type": "message", "id": "m1", "content": "/stream 1"})
        first, *again = await replies(ws, 3)
        assert (first["type"], first["duplicate"]) == ("ack", False)
        assert [(a["type"], a["duplicate"]) for a in again] == [("ack", True), ("ack", True)]
        assert {a["result"]["run_id"] for a in again} == {first["result"]["run_id"]}
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            url = f"/v1/sessions/{welcome['session_id']}/messages"
            rest = await http.post(url, json={"id": "m1", "content": "/stream 1"}, headers=ALICE)
            fresh = await http.post(url, json={"id": "m2", "content": "/stream 1"}, headers=ALICE)
        assert rest.status_code == 202 and rest.json()["duplicate"] is True
        assert fresh.status_code == 429, "the bucket really was empty"
        await ws.close()


async def test_a_run_committed_for_a_caller_that_went_away_still_runs(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server, TetherClient(server.ws) as client:
        engine, session_id = server.engine, client.session_id
        assert session_id is not None
        release = asyncio.Event()

        async def hold_the_writer(tx: StoreTx) -> None:
            await release.wait()

        blocker = asyncio.create_task(engine.store.write(hold_the_writer))
        submitted = asyncio.Event()
        write = engine.store.write

        async def spy(fn: Any) -> Any:
            submitted.set()
            return await write(fn)

        engine.store.write = spy  # type: ignore[method-assign]
        caller = asyncio.create_task(
            engine.sessions.message("local", session_id, "c1", "/stream 3", None)
        )
        async with asyncio.timeout(5):
            await submitted.wait()
        caller.cancel()  # e.g. the socket's reader, cancelled when its connection dropped
        release.set()
        await blocker
        engine.store.write = write  # type: ignore[method-assign]
        done = await client.wait_for_event("run.completed", timeout_s=5)
        command = await engine.store.get_command(session_id, "c1")
        assert command is not None and done.run_id == command.result["run_id"]


async def test_a_retry_counts_against_the_open_runs_cap_like_a_message(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, max_active_runs_per_user=1)
    async with (
        serve(settings) as server,
        TetherClient(server.ws) as first,
        TetherClient(server.ws) as second,
    ):
        ack = await first.send_message("/fail broken")
        failed = str(ack.result["run_id"]) if ack.result else ""
        await first.wait_for_event("run.failed", run_id=failed, timeout_s=10)
        await second.send_message("/approve hold")  # open, waiting for a person
        await second.wait_for_event("interrupt.requested", timeout_s=10)
        ws, _ = await raw_connect(server, {"type": "hello", "session_id": first.session_id})
        await send(ws, {"type": "retry", "id": "again", "run_id": failed})
        [refused] = await replies(ws, 1)
        assert (refused["type"], refused["code"]) == ("error", "quota_exceeded")
        await ws.close()
        run = await server.engine.store.get_run(failed)
        assert run is not None and (run.status, run.attempt) == ("failed", 1)
