"""The workspace agent over a real socket (uvicorn on port 0) with the demo model:
search, repo map, and the edit flow (diff in the approval; approve, deny, conflict)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Running, close_code, make_settings, raw_connect, serve
from tether.client import TetherClient
from tether.protocol.frames import EventFrame

APP = '''"""The demo app."""


def greet(name):
    """Say hello to someone by name."""
    return "hello " + name


def parse_config(text):
    """Read the settings file into a dictionary of options."""
    return dict(line.split("=", 1) for line in text.splitlines())
'''
UTIL_TS = "export function formatDate(d: Date): string {\n  return d.toISOString();\n}\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "workspaces" / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.py").write_text(APP)
    (project / "web").mkdir()
    (project / "web" / "util.ts").write_text(UTIL_TS)
    (project / "node_modules" / "dep").mkdir(parents=True)
    (project / "node_modules" / "dep" / "index.js").write_text("function hidden() {}\n")
    (tmp_path / "outside").mkdir()
    return tmp_path / "workspaces"


@pytest.fixture
async def server(sqlite_url: str, root: Path) -> AsyncIterator[Running]:
    async with serve(make_settings(sqlite_url, workspace_root=str(root))) as running:
        yield running


def client_for(server: Running, workspace: str | None = "proj") -> TetherClient:
    metadata = {"workspace": workspace} if workspace is not None else {}
    return TetherClient(server.ws, create={"agent": "assistant", "metadata": metadata})


async def run(client: TetherClient, content: str, until: str = "run.completed") -> str:
    ack = await client.send_message(content)
    run_id = str(ack.result["run_id"]) if ack.result else ""
    await client.wait_for_event(until, run_id=run_id, timeout_s=15)
    return run_id


def of_run(client: TetherClient, run_id: str, kind: str) -> list[EventFrame]:
    return [e for e in client.state.events if e.run_id == run_id and e.event == kind]


def final_text(client: TetherClient, run_id: str) -> str:
    return str(of_run(client, run_id, "message.assistant")[-1].data["content"])


async def test_where_is_searches_by_name_and_by_docstring_word(server: Running) -> None:
    async with client_for(server) as client:
        run_id = await run(client, "where is parse_config?")
        [finished] = of_run(client, run_id, "tool.finished")
        assert finished.data["tool"] == "search"
        best = finished.data["output"]["results"][0]
        assert (best["path"], best["start_line"], best["symbol"]) == (
            "src/app.py",
            9,
            "parse_config",
        )
        assert "Found" in final_text(client, run_id)
        run_id = await run(client, "where is dictionary")
        [finished] = of_run(client, run_id, "tool.finished")
        assert finished.data["output"]["results"][0]["symbol"] == "parse_config"


async def test_a_remembered_search_is_not_served_once_the_workspace_changed(
    server: Running, root: Path
) -> None:
    async with client_for(server) as client:
        for expect_cached in (False, True):
            run_id = await run(client, "where is zeta_handler")
            [finished] = of_run(client, run_id, "tool.finished")
            output = finished.data["output"]
            assert (output["cached"], output["results"]) == (expect_cached, [])
        (root / "proj" / "src" / "zeta.py").write_text("def zeta_handler():\n    pass\n")
        run_id = await run(client, "where is zeta_handler")
        [finished] = of_run(client, run_id, "tool.finished")
        output = finished.data["output"]
        assert output["cached"] is False
        assert output["results"][0]["path"] == "src/zeta.py"


async def test_show_me_the_layout_maps_files_and_symbols(server: Running) -> None:
    async with client_for(server) as client:
        run_id = await run(client, "show me the layout")
        [finished] = of_run(client, run_id, "tool.finished")
        assert finished.data["tool"] == "repo_map"
        lines = finished.data["output"]["map"].splitlines()
        assert lines == [
            "src/app.py: function greet, function parse_config",
            "web/util.ts: function formatDate",
        ]
        assert "src/app.py: function greet" in final_text(client, run_id)


async def edit_requested(client: TetherClient) -> tuple[str, EventFrame]:
    run_id = await run(client, "change greet to welcome in src/app.py", "interrupt.requested")
    [requested] = of_run(client, run_id, "interrupt.requested")
    return run_id, requested


async def test_approval_shows_the_diff_and_approving_changes_the_file(
    server: Running, root: Path
) -> None:
    target = root / "proj" / "src" / "app.py"
    async with client_for(server) as client, httpx.AsyncClient(base_url=server.http) as http:
        run_id, requested = await edit_requested(client)
        data = requested.data
        assert data["tool"] == "edit_file"
        assert data["details"]["path"] == "src/app.py"
        diff = data["details"]["diff"]
        assert diff.startswith("--- a/src/app.py\n+++ b/src/app.py\n")
        assert "-def greet(name):\n+def welcome(name):\n" in diff
        assert target.read_text() == APP, "nothing is written before the approval"
        session = client.session_id or ""
        pending = (await http.get(f"/v1/sessions/{session}/interrupts?status=pending")).json()
        assert pending[0]["details"] == data["details"]
        await client.respond(data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
    assert target.read_text() == APP.replace("def greet", "def welcome")
    finished = [e.data for e in of_run(client, run_id, "tool.finished")]
    assert [(f["tool"], f["ok"]) for f in finished] == [("read_file", True), ("edit_file", True)]
    assert "Changed src/app.py" in final_text(client, run_id)


async def test_the_workspace_cannot_be_swapped_under_a_waiting_approval(
    server: Running, root: Path
) -> None:
    (root / "twin" / "src").mkdir(parents=True)
    (root / "twin" / "src" / "app.py").write_text(APP)  # an identical clone elsewhere
    async with client_for(server) as client, httpx.AsyncClient(base_url=server.http) as http:
        run_id, requested = await edit_requested(client)
        url = f"/v1/sessions/{client.session_id}"
        session = (await http.get(url)).json()
        swapped = await http.patch(
            url,
            json={"metadata": {**session["metadata"], "workspace": "twin"}},
            headers={"If-Match": str(session["version"])},
        )
        assert (swapped.status_code, swapped.json()["code"]) == (409, "conflict")
        await client.respond(requested.data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        after = (await http.get(url)).json()
        renamed = await http.patch(
            url, json={"title": "renamed"}, headers={"If-Match": str(after["version"])}
        )
        assert renamed.status_code == 200, "other changes are fine once the run ended"
    assert (root / "twin" / "src" / "app.py").read_text() == APP
    assert (root / "proj" / "src" / "app.py").read_text() == APP.replace("greet", "welcome")


async def test_denying_leaves_the_file_unchanged(server: Running, root: Path) -> None:
    target = root / "proj" / "src" / "app.py"
    async with client_for(server) as client:
        run_id, requested = await edit_requested(client)
        await client.respond(requested.data["interrupt_id"], approved=False, note="not now")
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
    assert target.read_text() == APP
    assert [e.data["tool"] for e in of_run(client, run_id, "tool.started")] == ["read_file"]
    assert "did not change anything: not now" in final_text(client, run_id)


async def test_a_change_between_read_and_approval_is_a_conflict(
    server: Running, root: Path
) -> None:
    target = root / "proj" / "src" / "app.py"
    async with client_for(server) as client:
        run_id, requested = await edit_requested(client)
        changed = APP + "\n# edited by someone else\n"
        target.write_text(changed)
        await client.respond(requested.data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
    assert target.read_text() == changed, "the tool did not touch the file"
    finished = of_run(client, run_id, "tool.finished")
    edit = [e.data for e in finished if e.data["tool"] == "edit_file"]
    assert len(edit) == 1
    assert edit[0]["ok"] is False
    assert edit[0]["error"].startswith("conflict: ")
    assert "edit_file failed: conflict" in final_text(client, run_id)


async def test_create_writes_a_new_file_after_approval(server: Running, root: Path) -> None:
    async with client_for(server) as client:
        run_id = await run(client, "create notes/todo.txt with buy milk", "interrupt.requested")
        [requested] = of_run(client, run_id, "interrupt.requested")
        assert requested.data["details"] == {
            "path": "notes/todo.txt",
            "diff": "--- /dev/null\n+++ b/notes/todo.txt\n@@ -0,0 +1 @@\n+buy milk\n",
        }
        assert not (root / "proj" / "notes").exists()
        await client.respond(requested.data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
    assert (root / "proj" / "notes" / "todo.txt").read_text() == "buy milk\n"


async def test_a_session_without_a_workspace_gets_a_clear_tool_error(server: Running) -> None:
    async with client_for(server, workspace=None) as client:
        run_id = await run(client, "where is greet")
        [finished] = of_run(client, run_id, "tool.finished")
        assert finished.data["ok"] is False
        assert finished.data["error"].startswith("not_found: this session has no workspace")


@pytest.mark.parametrize("name", ["../outside", "/etc", "missing", "proj/../../outside"])
async def test_a_workspace_outside_the_root_is_refused_at_creation(
    server: Running, name: str
) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        reply = await http.post("/v1/sessions", json={"metadata": {"workspace": name}})
        assert reply.status_code == 422
        assert reply.json()["code"] == "invalid"
    hello = {"type": "hello", "create": {"metadata": {"workspace": name}}}
    ws, _ = await raw_connect(server, hello)
    assert await close_code(ws) == 4400


async def test_rest_binds_a_workspace(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        reply = await http.post(
            "/v1/sessions", json={"agent": "assistant", "metadata": {"workspace": "proj"}}
        )
        assert reply.status_code == 201, reply.text
        session_id = reply.json()["id"]
        async with TetherClient(server.ws, session_id=session_id) as client:
            sent = await http.post(
                f"/v1/sessions/{session_id}/messages",
                json={"id": "m1", "content": "where is greet"},
            )
            assert sent.status_code in (200, 201, 202), sent.text
            done = await client.wait_for(
                lambda e: e.event == "tool.finished" and e.data.get("tool") == "search",
                timeout_s=15,
            )
    assert done.data["output"]["results"][0]["path"] == "src/app.py"


async def test_a_second_session_on_the_same_root_reuses_the_repo_map(server: Running) -> None:
    for _ in range(2):
        async with client_for(server) as client:
            await run(client, "show me the layout")
    async with httpx.AsyncClient(base_url=server.http) as http:
        metrics = (await http.get("/metrics")).text
    assert 'tether_repo_map_cache_lookups_total{result="miss"} 1.0' in metrics
    assert 'tether_repo_map_cache_lookups_total{result="hit"} 1.0' in metrics
