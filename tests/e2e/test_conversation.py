"""The conversation in a real browser: streaming across a reload and a dropped connection
ends with the stored text exactly once; model text with HTML or a javascript: link is inert."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Shots
from tests.e2e.ui import (
    RECORD_STATES,
    Welcomes,
    assistant_texts,
    open_page,
    proxied,
    run_state,
    send,
    session_id,
    stored_messages,
    stream_text,
)
from tests.harness import Running

pytestmark = pytest.mark.e2e


async def test_reload_mid_stream_shows_the_final_text_once(
    server: Running, context: Any, shots: Shots
) -> None:
    page, errors = await open_page(context, server.http + "/")
    await send(page, "/stream 60 40")
    streaming = page.locator("#messages [data-role=assistant][aria-busy=true]")
    await expect(streaming).to_contain_text("t5 ")
    await shots.take(page, "streaming")
    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await run_state(page, "completed", 20_000)
    assert await assistant_texts(page) == [stream_text(60)]
    stored = await stored_messages(server.http, session_id(page))
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [stream_text(60)]
    assert await page.locator("#messages [data-role=user]").count() == 1
    await shots.take(page, "completed-after-reload")
    assert errors.errors == []


async def test_a_dropped_connection_resumes_without_duplicates_or_gaps(
    server: Running, context: Any, shots: Shots
) -> None:
    async with proxied(server.port) as proxy:
        page = await context.new_page()
        welcomes = Welcomes(page)
        page, errors = await open_page(context, f"http://127.0.0.1:{proxy.port}/", page)
        await page.evaluate(RECORD_STATES)
        await send(page, "/stream 100 50")
        streaming = page.locator("#messages [data-role=assistant][aria-busy=true]")
        await expect(streaming).to_contain_text("t5 ")
        assert proxy.cut() >= 1
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        states = await page.evaluate("window.__states")
        assert "reconnecting" in states, states
        # Back while the text was still streaming, from the page's cursor (no snapshot).
        await expect(streaming).to_have_count(1)
        assert [w["recovered"] for w in await welcomes.wait_for(2)] == [False, True]
        await run_state(page, "completed", 20_000)
        sid = session_id(page)
        assert await assistant_texts(page) == [stream_text(100)]
        stored = await stored_messages(server.http, sid)
        assert [m["content"] for m in stored if m["role"] == "assistant"] == [stream_text(100)]
        await shots.take(page, "resumed")
        assert errors.errors == []


async def test_model_html_and_javascript_links_render_inert(
    server: Running, context: Any, shots: Shots
) -> None:
    page, errors = await open_page(context, server.http + "/")
    attack = (
        '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
        "[click me](javascript:window.__xss=3) [ok](https://example.com/docs) **bold**"
    )
    await send(page, attack)
    await run_state(page, "completed")
    reply = page.locator("#messages [data-role=assistant] .text")
    await expect(reply).to_contain_text('<img src=x onerror="window.__xss=1">')
    await expect(reply).to_contain_text("[click me](javascript:window.__xss=3)")
    assert await page.locator("#messages img, #messages script, #messages iframe").count() == 0
    assert await page.locator('#messages a[href^="javascript" i]').count() == 0
    safe = reply.locator('a[href="https://example.com/docs"]')
    await expect(safe).to_have_text("ok")
    await expect(safe).to_have_attribute("rel", "noopener noreferrer nofollow")
    await expect(reply.locator("strong")).to_have_text("bold")
    await reply.get_by_text("[click me]", exact=False).click()
    await page.reload()  # the snapshot path renders the same text the same way
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(reply).to_contain_text('<img src=x onerror="window.__xss=1">')
    assert await page.locator("#messages img, #messages script").count() == 0
    assert await page.evaluate("window.__xss") is None
    await shots.take(page, "inert")
    assert errors.errors == []
