"""A session's search context is stored with the session: after a server restart the
same query is served from it; an approved edit of a file forgets the searches that
touched it; the agent can list earlier searches."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.harness import ServerProcess
from tether.client import SessionState, TetherClient
from tether.protocol.frames import EventFrame

pytestmark = pytest.mark.slow

APP = 'def greet(name):\n    """Say hello."""\n    return "hello " + name\n'


async def ask(client: TetherClient, content: str, until: str = "run.completed") -> str:
    ack = await client.send_message(content)
    run_id = str(ack.result["run_id"]) if ack.result else ""
    await client.wait_for_event(until, run_id=run_id, timeout_s=20)
    return run_id


def finished(client: TetherClient, run_id: str, tool: str) -> EventFrame:
    found = [
        e for e in client.state.events
        if e.run_id == run_id and e.event == "tool.finished" and e.data["tool"] == tool
    ]  # fmt: skip
    assert len(found) == 1
    return found[0]


async def test_search_context_survives_a_restart(
    sqlite_url: str, tmp_path: Path, processes: list[ServerProcess]
) -> None:
    (tmp_path / "ws" / "proj").mkdir(parents=True)
    (tmp_path / "ws" / "proj" / "app.py").write_text(APP)
    env = {
        "TETHER_STORE_URL": sqlite_url,
        "TETHER_WORKSPACE_ROOT": str(tmp_path / "ws"),
        "TETHER_LOG_LEVEL": "WARNING",
    }
    first = ServerProcess(env)
    processes.append(first)
    port = await first.start()
    create = {"agent": "assistant", "metadata": {"workspace": "proj"}}
    async with TetherClient(f"ws://127.0.0.1:{port}/v1/ws", create=create) as client:
        run_id = await ask(client, "where is greet")
        before = finished(client, run_id, "search").data["output"]
    assert before["cached"] is False
    assert before["results"][0]["path"] == "app.py"
    session_id = client.session_id
    first.stop()

    second = ServerProcess(env)
    processes.append(second)
    port = await second.start()
    url = f"ws://127.0.0.1:{port}/v1/ws"
    async with TetherClient(url, session_id=session_id, state=SessionState(session_id)) as client:
        run_id = await ask(client, "where is greet")
        after = finished(client, run_id, "search").data["output"]
        assert after == {**before, "cached": True}
        recall = await ask(client, "what did I search?")
        searches = finished(client, recall, "recall_searches").data["output"]["searches"]
        assert [s["query"] for s in searches] == ["greet"]
        assert searches[0]["results"] == before["results"]

        edit = await ask(client, "change Say to Wave in app.py", "interrupt.requested")
        requested = next(
            e for e in client.state.events
            if e.run_id == edit and e.event == "interrupt.requested"
        )  # fmt: skip
        await client.respond(requested.data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=edit, timeout_s=20)
        written = finished(client, edit, "edit_file").data["output"]
        assert written["search_entries_invalidated"] == 1
        run_id = await ask(client, "where is greet")
        fresh = finished(client, run_id, "search").data["output"]
        assert fresh["cached"] is False
        assert fresh["results"][0]["path"] == "app.py"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        metrics = (await http.get("/metrics")).text
    assert 'tether_search_context_lookups_total{result="hit"} 1.0' in metrics
    assert 'tether_search_context_lookups_total{result="miss"} 1.0' in metrics
