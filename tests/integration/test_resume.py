"""Guarantee 2 under fire: sockets dropped at random points mid-stream, then resumed.

After every run the client's applied ``seq`` list is exactly 1..N and its text equals the
stored text: nothing lost, nothing shown twice.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.harness import Running, make_settings, serve
from tether.client import SessionState, TetherClient
from tether.client.connection import new_command_id
from tether.store import EventRecord

RUNS = 24
TOKENS = 60


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    # RUNS back-to-back runs are more than the default per-user run-start burst allows.
    async with serve(make_settings(url, run_start_burst=RUNS, message_burst=RUNS)) as running:
        yield running


def stored_text(events: list[EventRecord], run_id: str) -> tuple[str, str]:
    """(assistant message id, its stored content) for ``run_id``."""
    final = next(e for e in events if e.run_id == run_id and e.kind == "message.assistant")
    deltas = "".join(
        e.data["delta"] for e in events if e.run_id == run_id and e.kind == "text.delta"
    )
    assert deltas == final.data["content"]
    return final.data["message_id"], final.data["content"]


def completed(client: TetherClient, run_id: str) -> bool:
    return any(e.event == "run.completed" and e.run_id == run_id for e in client.state.events)


async def reach(client: TetherClient, seq: int, run_id: str) -> None:
    """Return once the client applied ``seq`` or the run completed, whichever comes first."""
    if client.state.last_seq >= seq or completed(client, run_id):
        return
    await client.wait_for(
        lambda e: e.seq >= seq or (e.event == "run.completed" and e.run_id == run_id), timeout_s=20
    )


async def test_random_drops_mid_stream_lose_and_repeat_nothing(server: Running) -> None:
    rng = random.Random(20261121)
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        session = (await http.post("/v1/sessions", json={"title": "chaos"})).json()
    state = SessionState(session["id"])
    state.epoch = session["epoch"]
    drops = 0
    async with TetherClient(
        server.ws,
        session_id=session["id"],
        state=state,
        backoff_base_s=0.01,
        max_reconnect_attempts=50,
    ) as client:
        for run in range(RUNS):
            ack = await client.send_message(f"/stream {TOKENS} 2", command_id=new_command_id())
            run_id = ack.result["run_id"] if ack.result else ""
            start = client.state.last_seq
            for _ in range(1 if run % 3 else 2):
                # Deltas may be coalesced, so a run has at most TOKENS + 4 events: the drop
                # point is a random event of this run, or its end if the run is shorter.
                await reach(client, start + rng.randint(1, TOKENS), run_id)
                drops += await client.drop()
            await reach(client, 10**9, run_id)
            stored = await server.engine.store.read_events(session["id"], 0, 100_000)
            assert client.state.applied_seqs == [e.seq for e in stored], f"run {run}"
            message_id, content = stored_text(stored, run_id)
            assert client.state.text(message_id) == content
            assert content == " ".join(f"t{i}" for i in range(1, TOKENS + 1))
        assert client.reconnects >= RUNS
    assert drops >= RUNS
    assert client.state.duplicates_dropped >= 0
    head = await server.engine.store.get_session(session["id"])
    assert head is not None
    assert client.state.applied_seqs == list(range(1, head.head_seq + 1))
