"""Browser tests: Debian's chromium driven by Playwright for Python, against real servers.

The browser comes from the system (``scripts/ensure-chromium`` installs Debian's package;
``playwright install`` is never used). Without it these tests skip locally and fail under
CI=true. Screenshots of the main states land in ``artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Running, make_settings, serve
from tests.services import require

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system chromium, installed on first use when that is possible here."""
    if not CHROMIUM.exists():
        subprocess.run([str(ROOT / "scripts" / "ensure-chromium")], check=False, timeout=600)
    require(CHROMIUM.exists(), f"chromium at {CHROMIUM} (scripts/ensure-chromium installs it)")
    require(importlib.util.find_spec("playwright") is not None, "the playwright package")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def context(browser: Any) -> AsyncIterator[Any]:
    ctx = await browser.new_context(viewport={"width": 1100, "height": 800})
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def server(sqlite_url: str) -> AsyncIterator[Running]:
    async with serve(make_settings(sqlite_url)) as running:
        yield running


class Shots:
    """Saves named screenshots of a page for people to look at after the run."""

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^\w-]+", "_", test_name)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(self, page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{self.prefix}--{name}.png"
        await page.screenshot(path=str(path), full_page=False)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)
