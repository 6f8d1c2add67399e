"""Human-in-the-loop across kill -9: a pending approval survives, a crashed tool is never
re-run blindly, and a deadline that passed while the server was down is applied once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.harness import ServerProcess
from tether.client import TetherClient

pytestmark = pytest.mark.slow


@pytest.fixture
def launch(store_url: str) -> Iterator[ServerProcess]:
    env = {
        "TETHER_STORE_URL": store_url,
        "TETHER_RUN_LEASE_S": "1",
        "TETHER_RECOVERY_INTERVAL_S": "0.2",
        "TETHER_INTERRUPT_SWEEP_INTERVAL_S": "0.1",
        "TETHER_LOG_LEVEL": "WARNING",
    }
    started: list[ServerProcess] = []

    class Launcher(ServerProcess):
        def __init__(self) -> None:
            super().__init__(env)
            started.append(self)

    yield Launcher  # type: ignore[misc]
    for process in started:
        process.stop()


async def session_notes(port: int, session_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        session = (await http.get(f"/v1/sessions/{session_id}")).json()
    found: list[str] = session["metadata"].get("notes", [])
    return found


async def run_events(port: int, session_id: str, run_id: str) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        log = (await http.get(f"/v1/sessions/{session_id}/events", params={"limit": 1000})).json()
    return [e["event"] for e in log["events"] if e.get("run_id") == run_id]


async def new_interrupt(client: TetherClient, run_id: str, old_id: str) -> dict[str, Any]:
    """The run's new pending interrupt, whether the snapshot carried it or it arrives live."""
    snapshot = client.state.snapshot
    for pending in snapshot.interrupts if snapshot else []:
        if pending["run_id"] == run_id and pending["interrupt_id"] != old_id:
            return pending
    event = await client.wait_for(
        lambda e: (
            e.event == "interrupt.requested"
            and e.run_id == run_id
            and e.data["interrupt_id"] != old_id
        ),
        timeout_s=20,
    )
    return dict(event.data)


async def answer(port: int, session_id: str, interrupt_id: str, approved: bool) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        reply = await http.post(
            f"/v1/sessions/{session_id}/interrupts/{interrupt_id}",
            json={"id": f"answer-{interrupt_id}", "approved": approved},
        )
    assert reply.status_code == 200, reply.text


async def test_restart_while_waiting_then_answer_over_rest(launch: type[ServerProcess]) -> None:
    first = launch()
    port = await first.start()
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", max_reconnect_attempts=1) as client:
        ack = await client.send_message("/approve survive the crash")
        run_id = ack.result["run_id"] if ack.result else ""
        requested = await client.wait_for_event("interrupt.requested", run_id=run_id, timeout_s=15)
        session_id = client.session_id or ""
        first.kill()
    second = launch()
    port = await second.start()
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", session_id=session_id) as client:
        snapshot = client.state.snapshot
        assert snapshot is not None
        assert [i["interrupt_id"] for i in snapshot.interrupts] == [requested.data["interrupt_id"]]
        await answer(port, session_id, requested.data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=20)
    assert await session_notes(port, session_id) == ["survive the crash"]


@pytest.mark.parametrize("rerun", [True, False])
async def test_crash_mid_tool_asks_whether_to_run_it_again(
    launch: type[ServerProcess], rerun: bool
) -> None:
    first = launch()
    port = await first.start()
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", max_reconnect_attempts=1) as client:
        ack = await client.send_message("/approve_slow 5000 exactly once")
        run_id = ack.result["run_id"] if ack.result else ""
        requested = await client.wait_for_event("interrupt.requested", run_id=run_id, timeout_s=15)
        session_id = client.session_id or ""
        await answer(port, session_id, requested.data["interrupt_id"], approved=True)
        await client.wait_for_event("tool.started", run_id=run_id, timeout_s=15)
        first.kill()
    second = launch()
    port = await second.start()
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", session_id=session_id) as client:
        again = await new_interrupt(client, run_id, requested.data["interrupt_id"])
        assert again["tool"] == "demo_note"
        assert "Run demo_note again?" in again["prompt"]
        assert await session_notes(port, session_id) == [], "the crashed tool did not write"
        await answer(port, session_id, again["interrupt_id"], approved=rerun)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=20)
        text = [e for e in client.state.events if e.event == "message.assistant"][-1].data[
            "content"
        ]
    run_log = await run_events(port, session_id, run_id)
    assert run_log.count("run.interrupted") == 1
    assert run_log.count("tool.started") == (2 if rerun else 1)
    assert run_log.count("tool.finished") == (1 if rerun else 0)
    assert await session_notes(port, session_id) == (["exactly once"] if rerun else [])
    assert ("added the note" in text) is rerun


async def test_deadline_passed_while_down_is_applied_once(launch: type[ServerProcess]) -> None:
    first = launch()
    port = await first.start()
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", max_reconnect_attempts=1) as client:
        ack = await client.send_message("/ask 1")
        run_id = ack.result["run_id"] if ack.result else ""
        requested = await client.wait_for_event("interrupt.requested", run_id=run_id, timeout_s=15)
        session_id = client.session_id or ""
        first.kill()
    expires = datetime.fromisoformat(requested.data["expires_at"]).timestamp()
    # The deadline must pass while no server runs: this waits for wall-clock time itself.
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.2)
    second, third = launch(), launch()
    port = await second.start()
    await third.start()
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", session_id=session_id) as client:
        snapshot = client.state.snapshot
        done = snapshot is not None and any(
            r["run_id"] == run_id and r["status"] == "failed" for r in snapshot.runs
        )
        if not done:
            await client.wait_for_event("run.failed", run_id=run_id, timeout_s=20)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        log = (await http.get(f"/v1/sessions/{session_id}/events", params={"limit": 1000})).json()
    resolved = [e for e in log["events"] if e["event"] == "interrupt.resolved"]
    assert [(e["data"]["outcome"], e["data"]["by"]) for e in resolved] == [("expired", "timeout")]
    failure = next(e for e in log["events"] if e["event"] == "run.failed")
    assert failure["data"]["error"]["code"] == "interrupt_expired"
    assert sum(e["event"] == "run.failed" for e in log["events"]) == 1
