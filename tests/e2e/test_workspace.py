"""A file edit proposed by the workspace agent, approved from the page: the card shows the
unified diff line by line; approving writes the file, denying leaves it as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Shots
from tests.e2e.ui import open_page, run_state, send
from tests.harness import Running, make_settings, serve

pytestmark = pytest.mark.e2e

APP = 'def greet(name):\n    """Say hello."""\n    return "hello " + name\n'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "workspaces" / "proj"
    project.mkdir(parents=True)
    (project / "app.py").write_text(APP)
    return tmp_path / "workspaces"


@pytest.fixture
async def workspace_server(sqlite_url: str, root: Path) -> AsyncIterator[Running]:
    async with serve(make_settings(sqlite_url, workspace_root=str(root))) as running:
        yield running


async def bound_session(base_url: str) -> str:
    body = {"title": "edit", "agent": "assistant", "metadata": {"workspace": "proj"}}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        created = await http.post("/v1/sessions", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "deny"])
async def test_an_edit_approval_shows_the_diff_and_decides_the_file(
    workspace_server: Running, root: Path, context: Any, shots: Shots, approve: bool
) -> None:
    sid = await bound_session(workspace_server.http)
    page, errors = await open_page(context, f"{workspace_server.http}/#s={sid}")
    await send(page, "change greet to welcome in app.py")
    card = page.locator("[data-interrupt-id][data-kind=approval][data-status=pending]")
    diff = card.locator(".diff")
    await expect(diff).to_be_visible()
    await expect(diff).to_contain_text("app.py")
    await expect(diff.locator(".del")).to_have_text(["-def greet(name):"])
    await expect(diff.locator(".add")).to_have_text(["+def welcome(name):"])
    await shots.take(page, "edit-diff")
    await card.locator("[data-action=approve]" if approve else "[data-action=deny]").click()
    settled = "approved" if approve else "denied"
    await expect(page.locator("[data-interrupt-id][data-kind=approval]")).to_have_attribute(
        "data-status", settled
    )
    await run_state(page, "completed")
    expected = APP.replace("def greet", "def welcome") if approve else APP
    assert (root / "proj" / "app.py").read_text() == expected
    assert errors.errors == []
