"""kill -9 mid-run, then start again on the same database.

Nothing a client saw is lost or renumbered, the client resumes, and the interrupted run
ends ``run.interrupted`` then ``run.failed {retryable: true}``.
"""

from __future__ import annotations

import pytest

from tests.harness import ServerProcess
from tether.client import SessionState, TetherClient
from tether.store import open_store

pytestmark = pytest.mark.slow


async def test_kill_9_mid_run_then_restart(store_url: str, processes: list[ServerProcess]) -> None:
    env = {
        "TETHER_STORE_URL": store_url,
        "TETHER_RUN_LEASE_S": "1",
        "TETHER_RECOVERY_INTERVAL_S": "0.2",
        "TETHER_LOG_LEVEL": "WARNING",
    }
    first = ServerProcess(env)
    processes.append(first)
    port = await first.start()
    state = SessionState()
    async with TetherClient(
        f"ws://127.0.0.1:{port}/v1/ws", state=state, max_reconnect_attempts=1
    ) as client:
        ack = await client.send_message("/stream 500 20")
        run_id = ack.result["run_id"] if ack.result else ""
        await client.wait_for(lambda e: e.event == "text.delta" and e.seq >= 12, timeout_s=20)
        first.kill()
        seen = [(e.seq, e.event, e.data) for e in state.events]
    session_id = state.session_id
    assert session_id is not None
    assert len(seen) >= 11

    second = ServerProcess(env)
    processes.append(second)
    port = await second.start()
    async with TetherClient(
        f"ws://127.0.0.1:{port}/v1/ws", session_id=session_id, state=state
    ) as client:
        assert client.welcome is not None
        assert client.welcome.recovered is True
        failed = await client.wait_for_event("run.failed", run_id=run_id, timeout_s=30)
        assert failed.data["retryable"] is True
        assert failed.data["error"]["code"] == "interrupted"
        ends = [e.event for e in state.events if e.run_id == run_id][-2:]
        assert ends == ["run.interrupted", "run.failed"]
        assert state.snapshot is not None, "the first connection created the session"
        first_seq = state.snapshot.as_of_seq + 1
        assert state.applied_seqs == list(range(first_seq, state.last_seq + 1))

    store = open_store(store_url)
    await store.start(lambda events: None)
    try:
        stored = await store.read_events(session_id, 0, 100_000)
        run = await store.get_run(run_id)
    finally:
        await store.close()
    by_seq = {e.seq: (e.seq, e.kind, e.data) for e in stored}
    assert [by_seq[seq] for seq, _, _ in seen] == seen, "every event a client saw survived as seen"
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert run is not None
    assert run.status == "failed"
