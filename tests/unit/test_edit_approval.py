"""An edit is written only with a person's approval: the runner (demo model, real tools,
real SQLite store) pauses with the diff, writes on a person's approval, and asks again
when crash recovery merely grants ``approved`` to a call that never started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.agents.demo import demo_runner
from tether.agents.runner import AgentEvent, Answer, Finished, Paused, RunInput, ToolStarted
from tether.store import Store, open_store
from tether.workspace.locks import LocalLocks
from tether.workspace.repo_map import IndexCache
from tether.workspace.scan import ScanLimits
from tether.workspace.service import WorkspaceConfig, WorkspaceService

APP = "def greet():\n    return 1\n"


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    store = open_store(sqlite_url)
    await store.start(lambda events: None)
    yield store
    await store.close()


@pytest.fixture
def service(tmp_path: Path, sqlite_store: Store) -> WorkspaceService:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "app.py").write_text(APP)
    cache = IndexCache(2, 1_000_000, ScanLimits())
    return WorkspaceService(WorkspaceConfig(str(tmp_path)), sqlite_store, cache, LocalLocks())


async def drain(stream: AsyncIterator[AgentEvent]) -> AgentEvent:
    last: AgentEvent | None = None
    async for event in stream:
        if isinstance(event, ToolStarted) and event.committed is not None:
            event.committed.set_result(None)  # what the server does once it is durable
        last = event
    assert last is not None
    return last


def run_input(prompt: str, **changes: object) -> RunInput:
    base = {"run_id": "r1", "session_id": "s1", "prompt": prompt,
            "metadata": {"workspace": "proj"}}  # fmt: skip
    return RunInput(**{**base, **changes})  # type: ignore[arg-type]


async def test_only_a_persons_approval_writes(service: WorkspaceService, tmp_path: Path) -> None:
    runner = demo_runner(service)
    paused = await drain(runner.start(run_input("change greet to hello in app.py")))
    assert isinstance(paused, Paused)
    [request] = paused.requests
    assert (request.kind, request.tool) == ("approval", "edit_file")
    assert request.details is not None and request.details["path"] == "app.py"
    assert "-def greet():\n+def hello():\n" in request.details["diff"]

    granted = Answer(request.call_id, approved=True)  # what recovery gives an untouched call
    again = await drain(
        runner.resume(run_input("", checkpoint=paused.checkpoint, answers=[granted]))
    )
    assert isinstance(again, Paused), "a grant that no person gave asks again"
    assert [r.tool for r in again.requests] == ["edit_file"]
    assert (tmp_path / "proj" / "app.py").read_text() == APP

    person = Answer(request.call_id, approved=True, by_person=True)
    done = await drain(runner.resume(run_input("", checkpoint=paused.checkpoint, answers=[person])))
    assert isinstance(done, Finished)
    assert (tmp_path / "proj" / "app.py").read_text() == APP.replace("greet", "hello")


async def test_a_tool_that_requires_approval_never_runs_on_a_recovery_grant(
    service: WorkspaceService,
) -> None:
    """``demo_note`` is declared ``requires_approval=True``: after a crash, recovery grants
    ``approved`` to calls that never started, and that is not a person's approval."""
    notes: list[list[str]] = []

    async def update(change: object) -> dict[str, object]:
        meta = change({"notes": []})  # type: ignore[operator]
        notes.append(meta["notes"])
        return dict(meta)

    runner = demo_runner(service)
    paused = await drain(runner.start(run_input("/approve keep", update_metadata=update)))
    assert isinstance(paused, Paused)
    [request] = paused.requests
    assert request.tool == "demo_note"
    granted = Answer(request.call_id, approved=True)
    resume = run_input("", checkpoint=paused.checkpoint, answers=[granted], update_metadata=update)
    again = await drain(runner.resume(resume))
    assert isinstance(again, Paused) and [r.tool for r in again.requests] == ["demo_note"]
    assert notes == []
    person = Answer(request.call_id, approved=True, by_person=True)
    resume = run_input("", checkpoint=paused.checkpoint, answers=[person], update_metadata=update)
    assert isinstance(await drain(runner.resume(resume)), Finished)
    assert notes == [["keep"]]


async def test_a_large_approved_file_is_written(service: WorkspaceService, tmp_path: Path) -> None:
    """The logged step of a big write carries a capped diff (still an object), so the
    approval of a 20 KB file leads to the file, not to a failed run."""
    text = "word " * 4_000
    runner = demo_runner(service)
    started: list[ToolStarted] = []

    async def collect(stream: AsyncIterator[AgentEvent]) -> AgentEvent:
        async def tap() -> AsyncIterator[AgentEvent]:
            async for event in stream:
                if isinstance(event, ToolStarted):
                    started.append(event)
                yield event

        return await drain(tap())

    paused = await collect(runner.start(run_input(f"create big.txt with {text}")))
    assert isinstance(paused, Paused)
    [request] = paused.requests
    person = Answer(request.call_id, approved=True, by_person=True)
    done = await collect(
        runner.resume(run_input("", checkpoint=paused.checkpoint, answers=[person]))
    )
    assert isinstance(done, Finished)
    assert (tmp_path / "proj" / "big.txt").read_text().strip() == text.strip()
    assert all(isinstance(s.args, dict) for s in started)
    assert any(len(str(s.args.get("diff", ""))) < len(text) for s in started)
