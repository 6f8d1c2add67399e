"""The ``assistant`` agent through the real OpenAI provider code path, against a local
scripted OpenAI-compatible server: streamed text, tool calls, an approved edit, usage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fake_openai import MODEL, Call, FakeOpenAI, Say, fake_openai
from tests.harness import Running, make_settings, serve
from tether.agents.assistant import OLLAMA_BASE_URL, ModelSettings, build_model
from tether.client import TetherClient

APP = 'def greet(name):\n    """Say hello."""\n    return "hello " + name\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "proj").mkdir(parents=True)
    (tmp_path / "ws" / "proj" / "app.py").write_text(APP)
    return tmp_path / "ws"


@pytest.fixture
async def started(
    sqlite_url: str, root: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Running, FakeOpenAI]]:
    script: list[Say | Call] = request.param
    async with fake_openai(script) as fake:
        settings = make_settings(
            sqlite_url,
            workspace_root=str(root),
            model=f"openai-compatible:{MODEL}",
            model_base_url=fake.base_url,
            model_api_key="test-key-123",
        )
        async with serve(settings) as running:
            yield running, fake


def client_for(running: Running) -> TetherClient:
    create = {"agent": "assistant", "metadata": {"workspace": "proj"}}
    return TetherClient(running.ws, create=create)


SEARCH_SCRIPT = [
    Call("search", {"query": "greet"}, text="Let me look."),
    Say(["Found ", "`greet` ", "in ", "app.py."]),
]


@pytest.mark.parametrize("started", [SEARCH_SCRIPT], indirect=True)
async def test_the_real_provider_streams_and_calls_a_tool(
    started: tuple[Running, FakeOpenAI],
) -> None:
    running, fake = started
    async with client_for(running) as client:
        ack = await client.send_message("Where is greet?")
        run_id = str(ack.result["run_id"]) if ack.result else ""
        done = await client.wait_for_event("run.completed", run_id=run_id, timeout_s=20)
    events = [e for e in client.state.events if e.run_id == run_id]
    deltas = [e.data["delta"] for e in events if e.event == "text.delta"]
    assert "".join(deltas) == "Let me look.Found `greet` in app.py."
    kinds = [e.event for e in events]
    assert kinds.index("text.delta") < kinds.index("message.assistant"), "streamed first"
    finished = [e.data for e in events if e.event == "tool.finished"]
    assert [(f["tool"], f["ok"]) for f in finished] == [("search", True)]
    assert finished[0]["output"]["results"][0]["path"] == "app.py"
    messages = [e.data["content"] for e in events if e.event == "message.assistant"]
    assert messages == ["Let me look.", "Found `greet` in app.py."]
    assert done.data["usage"] == {"input_tokens": 30, "output_tokens": 12, "requests": 2}
    async with httpx.AsyncClient(base_url=running.http, timeout=10) as http:
        today = (await http.get("/v1/usage")).json()["usage"]
    assert (today["runs"], today["input_tokens"], today["output_tokens"]) == (1, 30, 12)

    first, second = fake.requests
    assert first["model"] == MODEL and first["stream"] is True
    assert first["stream_options"] == {"include_usage": True}
    tools = {t["function"]["name"] for t in first["tools"]}
    assert {"repo_map", "search", "read_file", "edit_file", "write_file"} <= tools
    assert fake.headers[0]["authorization"] == "Bearer test-key-123"
    tool_reply = second["messages"][-1]
    assert tool_reply["role"] == "tool" and tool_reply["tool_call_id"] == "call_1"
    assert json.loads(tool_reply["content"])["results"][0]["path"] == "app.py"


SHA = hashlib.sha256(APP.encode()).hexdigest()
EDIT_SCRIPT = [
    Call("read_file", {"path": "app.py"}),
    Call("edit_file", {"path": "app.py", "old": "hello ", "new": "hi ", "sha256": SHA}),
    Say(["Renamed."]),
]


@pytest.mark.parametrize("started", [EDIT_SCRIPT], indirect=True)
async def test_the_real_provider_proposes_an_edit_that_a_person_approves(
    started: tuple[Running, FakeOpenAI], root: Path
) -> None:
    running, fake = started
    async with client_for(running) as client:
        ack = await client.send_message("Say hi instead of hello")
        run_id = str(ack.result["run_id"]) if ack.result else ""
        requested = await client.wait_for_event("interrupt.requested", run_id=run_id, timeout_s=20)
        assert requested.data["details"]["path"] == "app.py"
        assert (
            '-    return "hello " + name\n+    return "hi " + name\n'
            in (requested.data["details"]["diff"])
        )
        assert (root / "proj" / "app.py").read_text() == APP
        await client.respond(requested.data["interrupt_id"], approved=True)
        done = await client.wait_for_event("run.completed", run_id=run_id, timeout_s=20)
    assert (root / "proj" / "app.py").read_text() == APP.replace("hello ", "hi ")
    assert done.data["usage"]["requests"] == 1, "the resumed run made the last request"
    assert len(fake.requests) == 3


def test_model_settings_pick_the_provider_and_refuse_bad_ones() -> None:
    assert build_model(ModelSettings("")) is None
    ollama = build_model(ModelSettings("ollama:qwen2.5-coder"))
    assert ollama is not None
    assert (ollama.model_name, ollama.base_url) == ("qwen2.5-coder", OLLAMA_BASE_URL + "/")
    openai = build_model(ModelSettings("openai:gpt-4o-mini", api_key="sk-test"))
    assert openai is not None and openai.system == "openai"
    with pytest.raises(ValueError, match="needs TETHER_MODEL_API_KEY"):
        build_model(ModelSettings("openai:gpt-4o-mini"))
    with pytest.raises(ValueError, match="needs TETHER_MODEL_BASE_URL"):
        build_model(ModelSettings("openai-compatible:x"))
    with pytest.raises(ValueError, match="provider:model"):
        build_model(ModelSettings("anthropic:claude"))
