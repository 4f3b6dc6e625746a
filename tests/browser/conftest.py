"""Browser fixtures: the emulator on a real socket, Debian's Chromium driven by Playwright, and a page that
records console errors. Chromium is not downloaded (no internet): `make test` installs Debian's package."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from boothbridge.settings import PROJECT_ROOT, Settings
from local.app import Emulator
from tests.support.booth import credentials
from tests.support.live_server import serving

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def artifacts_dir() -> Path:
    """Where screenshots go: $BOOTHBRIDGE_ARTIFACTS or test-artifacts/ in the project (git-ignored)."""
    return Path(os.environ.get("BOOTHBRIDGE_ARTIFACTS") or PROJECT_ROOT / "test-artifacts")


@pytest.fixture
def settings_overrides(app_socket: socket.socket) -> dict[str, Any]:
    # The pages, the ingest URLs they show and the result links all name the real socket the browser uses.
    return {"public_base_url": f"http://127.0.0.1:{app_socket.getsockname()[1]}", "t_sync_response": 10.0}


@pytest.fixture
async def site(emulator: Emulator, app_socket: socket.socket, settings: Settings) -> AsyncIterator[str]:
    async with serving(emulator, app_socket):
        yield settings.base_url


@pytest.fixture
async def http(site: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client to the same server: the booth's posts and set-up through the API."""
    async with httpx.AsyncClient(base_url=site, timeout=30) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium package")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class UI:
    """One browser tab on the site, with what its pages logged as errors."""

    page: Page
    context: BrowserContext
    site: str
    password: str
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))

    async def login(self, username: str = "serg", password: str | None = None) -> None:
        await self.page.goto(f"{self.site}/")
        await self.page.fill("#username", username)
        await self.page.fill("#password", password or self.password)
        await self.page.click("#login-submit")
        await self.page.wait_for_url("**/slots.html")
        await self.page.wait_for_selector("tr[data-slot]")

    async def open(self, path: str) -> None:
        await self.page.goto(f"{self.site}/{path}")
        await self.page.wait_for_load_state("networkidle")


async def new_ui(browser: Browser, site: str, settings: Settings, viewport: dict[str, int]) -> UI:
    context = await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        permissions=["clipboard-read", "clipboard-write"],
        is_mobile=viewport["width"] < 500,
        has_touch=viewport["width"] < 500,
    )
    page = await context.new_page()
    ui = UI(page, context, site, credentials(settings.credentials_path)["users"]["serg"])
    ui.watch(page)
    return ui


@pytest.fixture
async def ui(browser: Browser, site: str, settings: Settings) -> AsyncIterator[UI]:
    tab = await new_ui(browser, site, settings, DESKTOP)
    try:
        yield tab
    finally:
        await tab.context.close()
