"""Human-in-the-loop in a real browser: approvals across two pages, a question answered by
click (and keyboard), and an approval that survives a server restart."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Shots
from tests.e2e.ui import RECORD_STATES, open_page, run_state, send, session_id
from tests.harness import Running, ServerProcess, free_port

pytestmark = pytest.mark.e2e


async def notes(base_url: str, sid: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        session = (await http.get(f"/v1/sessions/{sid}")).json()
    found: list[str] = session["metadata"].get("notes", [])
    return found


async def test_approve_in_one_page_and_the_other_updates(
    server: Running, context: Any, shots: Shots
) -> None:
    first, errors1 = await open_page(context, server.http + "/")
    await send(first, "/approve buy milk")
    card1 = first.locator("[data-interrupt-id][data-kind=approval]")
    await expect(card1).to_have_attribute("data-status", "pending")
    await expect(card1.locator(".tool code")).to_have_text("demo_note")
    await expect(card1.locator("pre.args")).to_contain_text('"buy milk"')
    await expect(first.locator("#run-status")).to_have_attribute("data-state", "waiting")
    badge = first.locator(f'[data-session-id="{session_id(first)}"] .badge')
    await expect(badge).to_have_text("1")
    second, errors2 = await open_page(context, first.url)
    card2 = second.locator("[data-interrupt-id][data-kind=approval]")
    await expect(card2).to_have_attribute("data-status", "pending")
    await shots.take(first, "approval-pending")
    await card1.locator("[data-field=note]").fill("go ahead")
    await card1.locator("[data-action=approve]").click()
    await expect(card1).to_have_attribute("data-status", "approved")
    await expect(card2).to_have_attribute("data-status", "approved")
    await expect(card2.locator(".outcome")).to_contain_text("Note: go ahead")
    assert await card2.locator("[data-action]").count() == 0
    for page in (first, second):
        await run_state(page, "completed")
        tool = page.locator("details.tool-call[data-status=ok]")
        await expect(tool.locator(".tool-name")).to_have_text("demo_note")
    await expect(badge).to_have_count(0)
    await second.locator("details.tool-call summary").click()
    await expect(second.locator("details.tool-call .result")).to_be_visible()
    assert await notes(server.http, session_id(first)) == ["buy milk"]
    await shots.take(second, "approved-elsewhere")
    assert errors1.errors == errors2.errors == []


async def test_a_question_with_choices_is_answered_by_click_and_keyboard(
    server: Running, context: Any, shots: Shots
) -> None:
    page, errors = await open_page(context, server.http + "/")
    await send(page, "/ask")
    card = page.locator("[data-interrupt-id][data-kind=question]")
    await expect(card.locator("[data-choice]")).to_have_text(["red", "green", "blue"])
    await shots.take(page, "question")
    await card.locator("[data-choice=green]").click()
    await expect(card).to_have_attribute("data-status", "answered")
    await expect(card.locator(".outcome")).to_contain_text("Answered: green")
    await run_state(page, "completed")
    await send(page, "/ask 600")
    second = page.locator("[data-interrupt-id][data-kind=question][data-status=pending]")
    await expect(second.locator(".deadline time")).to_have_text(re.compile(r"^(10:00|9:[0-5]\d)$"))
    await expect(second.locator(".deadline")).to_contain_text("then the run fails")
    await second.locator("[data-choice=blue]").focus()
    await page.keyboard.press("Enter")
    answered = page.locator("[data-interrupt-id][data-kind=question][data-status=answered]")
    await expect(answered).to_have_count(2)
    await expect(answered.last.locator(".outcome")).to_contain_text("Answered: blue")
    await run_state(page, "completed")
    await send(page, "/ask free")
    free = page.locator("[data-interrupt-id][data-kind=question][data-status=pending]")
    await free.locator("[data-field=answer]").fill("  teal  ")
    await free.locator("[data-field=answer]").press("Enter")
    await expect(answered).to_have_count(3)
    await expect(answered.last.locator(".outcome")).to_contain_text("Answered: teal")
    await run_state(page, "completed")
    assert errors.errors == []


async def test_a_question_that_times_out_closes_its_card(
    server: Running, context: Any, shots: Shots
) -> None:
    page, errors = await open_page(context, server.http + "/")
    await send(page, "/ask 1")
    card = page.locator("[data-interrupt-id][data-kind=question]")
    await expect(card).to_have_attribute("data-status", "expired", timeout=15_000)
    await expect(card.locator("[data-choice]")).to_have_count(0)
    await run_state(page, "failed")
    await expect(page.locator("#retry")).to_be_visible()
    await shots.take(page, "expired")
    assert errors.errors == []


@pytest.fixture
async def restartable(sqlite_url: str) -> AsyncIterator[Any]:
    """Start `tether serve` processes on one fixed port and SQLite file; stops them all."""
    port = free_port()
    env = {"TETHER_STORE_URL": sqlite_url, "TETHER_LOG_LEVEL": "WARNING"}
    started: list[ServerProcess] = []

    async def start() -> ServerProcess:
        process = ServerProcess(env, port)
        started.append(process)
        assert await process.start() == port
        return process

    yield start
    for process in started:
        process.stop()


async def test_an_approval_survives_a_server_restart(
    restartable: Any, context: Any, shots: Shots
) -> None:
    first = await restartable()
    base = f"http://127.0.0.1:{first.port}"
    page, errors = await open_page(context, base + "/")
    await page.evaluate(RECORD_STATES)
    await send(page, "/approve survive restart")
    card = page.locator("[data-interrupt-id][data-kind=approval]")
    await expect(card).to_have_attribute("data-status", "pending")
    first.kill()
    await expect(page.locator("#status")).not_to_have_attribute("data-state", "connected")
    await shots.take(page, "server-down")
    await restartable()
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "connected", timeout=30_000
    )
    states = await page.evaluate("window.__states")
    assert "reconnecting" in states, states
    await expect(card).to_have_attribute("data-status", "pending")
    await card.locator("[data-action=approve]").click()
    await expect(card).to_have_attribute("data-status", "approved")
    await run_state(page, "completed", 20_000)
    assert await notes(base, session_id(page)) == ["survive restart"]
    await shots.take(page, "approved-after-restart")
    assert errors.errors == []


async def test_tool_cards_survive_a_reload(server: Running, context: Any) -> None:
    page, errors = await open_page(context, server.http + "/")
    await send(page, "/approve keep me")
    card = page.locator("[data-interrupt-id][data-kind=approval][data-status=pending]")
    await card.locator("[data-action=approve]").click()
    await run_state(page, "completed")
    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    tool = page.locator("details.tool-call[data-status=ok]")
    await expect(tool.locator(".tool-name")).to_have_text("demo_note")
    await tool.locator("summary").click()
    await expect(tool).to_contain_text("keep me")
    # The card sits after the message that asked for it, then comes the reply.
    order = await page.locator("#messages").evaluate(
        """(log) => [...log.children].map((e) => e.matches('details.tool-call') ? 'tool'
             : (e.querySelector('[data-role]') ?? e).dataset.role ?? e.tagName)"""
    )
    assert order == ["user", "tool", "assistant"], order
    assert errors.errors == []
