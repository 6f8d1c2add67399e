"""The sessions list, the URL, the token field and a narrow screen, in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Shots
from tests.e2e.ui import open_page, run_state, send, session_id
from tests.harness import Running, make_settings, serve

pytestmark = pytest.mark.e2e


async def test_create_rename_open_by_url_and_delete(
    server: Running, context: Any, shots: Shots
) -> None:
    page, errors = await open_page(context, server.http + "/")
    first = session_id(page)
    await send(page, "hello there")
    await run_state(page, "completed")
    await page.click("#new-session")
    await expect(page).not_to_have_url(f"{server.http}/#s={first}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    second = session_id(page)
    rows = page.locator("#session-list [data-session-id]")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_have_attribute("data-session-id", second)
    await expect(rows.first.locator("a.open")).to_have_attribute("aria-current", "page")
    row = page.locator(f'[data-session-id="{first}"]')
    await expect(row.locator(".meta")).to_contain_text("demo")
    await row.locator("[data-action=rename]").click()
    await page.locator("[data-field=title]").fill("Groceries")
    await page.keyboard.press("Enter")
    await expect(row.locator(".title")).to_have_text("Groceries")
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        assert (await http.get(f"/v1/sessions/{first}")).json()["title"] == "Groceries"
    await shots.take(page, "renamed")
    # A shared link (or a reload) reopens the session it names.
    other = await context.new_page()
    await other.goto(f"{server.http}/#s={first}")
    await expect(other.locator("#session-title")).to_have_text("Groceries")
    await expect(other.locator("#messages [data-role=user] .text")).to_have_text(["hello there"])
    await other.close()
    errors.accept_next_dialog()
    await page.locator(f'[data-session-id="{second}"] [data-action=delete]').click()
    await expect(rows).to_have_count(1)
    await expect(page).to_have_url(f"{server.http}/#s={first}")
    await expect(page.locator("#session-title")).to_have_text("Groceries")
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        assert (await http.get(f"/v1/sessions/{second}")).status_code == 404
    assert len(errors.dialogs) == 1 and "Delete" in errors.dialogs[0]
    assert errors.errors == []


async def test_a_deleted_session_is_a_clear_message_not_a_reconnect_loop(
    server: Running, context: Any
) -> None:
    page, errors = await open_page(context, server.http + "/")
    sid = session_id(page)
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        assert (await http.delete(f"/v1/sessions/{sid}")).status_code == 204
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "closed")
    await expect(status).to_contain_text("Session not found")
    sockets: list[Any] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    # Proving an absence needs a window: the first retries of a reconnect loop would come
    # within 250 ms and 500 ms (full-jitter backoff), so 1.5 s would see several.
    await page.wait_for_timeout(1500)
    assert sockets == []
    assert errors.errors == []


@pytest.fixture
async def token_server(sqlite_url: str) -> AsyncIterator[Running]:
    settings = make_settings(sqlite_url, auth="token", api_tokens="tok-alice-123=alice")
    async with serve(settings) as running:
        yield running


async def test_the_token_field_signs_in_and_is_kept_for_the_tab(
    token_server: Running, context: Any, shots: Shots
) -> None:
    page = await context.new_page()
    await page.goto(token_server.http + "/")
    form = page.locator("#token-form")
    await expect(form).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-state", "closed")
    await shots.take(page, "token-asked")
    await page.locator("#token").fill("wrong-token")
    await page.keyboard.press("Enter")
    await expect(form).to_be_visible()
    await page.locator("#token").fill("tok-alice-123")
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(form).to_be_hidden()
    await send(page, "hi")
    await run_state(page, "completed")
    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#messages [data-role=assistant]")).to_have_count(1)
    assert await page.evaluate("sessionStorage.getItem('tether.token')") == "tok-alice-123"


async def test_a_narrow_screen_keeps_every_control_reachable(
    server: Running, browser: Any, shots: Shots
) -> None:
    context = await browser.new_context(viewport={"width": 360, "height": 720})
    try:
        page, errors = await open_page(context, server.http + "/")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360  # nothing forces sideways scrolling
        await expect(page.locator("#sessions")).to_be_hidden()
        await page.click("#toggle-sessions")
        await expect(page.locator("#sessions")).to_be_visible()
        await expect(page.locator("#toggle-sessions")).to_have_attribute("aria-expanded", "true")
        await shots.take(page, "narrow-sessions")
        await page.locator("#session-list a.open").first.click()
        await expect(page.locator("#sessions")).to_be_hidden()
        await send(page, "/approve from a phone")
        card = page.locator("[data-interrupt-id]")
        await card.locator("[data-action=approve]").focus()
        await page.keyboard.press("Enter")
        await expect(card).to_have_attribute("data-status", "approved")
        await run_state(page, "completed")
        await shots.take(page, "narrow-approved")
        assert errors.errors == []
    finally:
        await context.close()
