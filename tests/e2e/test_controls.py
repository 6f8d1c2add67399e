"""Controls in a real browser: Shift+Enter, the busy policy when a message queues, cancel,
and retry of a failed run."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Shots
from tests.e2e.ui import assistant_texts, open_page, run_state, send, stream_text
from tests.harness import Running

pytestmark = pytest.mark.e2e


async def test_queue_cancel_and_shift_enter(server: Running, context: Any, shots: Shots) -> None:
    page, errors = await open_page(context, server.http + "/")
    await page.fill("#composer", "line one")
    await page.press("#composer", "Shift+Enter")
    await page.keyboard.type("line two")
    assert await page.input_value("#composer") == "line one\nline two"
    await page.press("#composer", "Enter")
    await expect(page.locator("#messages [data-role=user] .text")).to_have_text(
        ["line one\nline two"]
    )
    await run_state(page, "completed")
    await send(page, "/stream 400 50")
    await run_state(page, "running")
    await send(page, "/stream 3")
    status = page.locator("#run-status")
    await expect(status).to_contain_text("1 more queued (busy policy: enqueue")
    await shots.take(page, "queued")
    await page.click("#cancel")
    # The cancelled run ends; the queued one runs next and completes.
    await expect(page.locator("#messages [data-role=assistant] .text").last).to_have_text(
        stream_text(3)
    )
    await run_state(page, "completed", 20_000)
    texts = await assistant_texts(page)
    assert texts[-1] == stream_text(3)
    assert texts[-2] != stream_text(400)  # cut short by the cancel
    assert errors.errors == []


async def test_retry_a_failed_run(server: Running, context: Any, shots: Shots) -> None:
    page, errors = await open_page(context, server.http + "/")
    await send(page, "/flaky")
    await run_state(page, "failed")
    await expect(page.locator("#notice")).to_contain_text("Run failed")
    retry = page.locator("#retry")
    await expect(retry).to_be_visible()
    await shots.take(page, "failed")
    await retry.focus()
    await page.keyboard.press("Enter")
    await run_state(page, "completed")
    await expect(retry).to_be_hidden()
    assert errors.errors == []
