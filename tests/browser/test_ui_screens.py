"""Every page at desktop and at phone width: a screenshot of each into the test artifacts folder, no console
error on any of them, and nothing wider than the phone's screen."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser

from boothbridge.settings import Settings
from tests.browser.conftest import DESKTOP, PHONE, UI, artifacts_dir, new_ui
from tests.browser.pictures import booth_photo, frame_template
from tests.support.booth import configure_slot, credentials, operator_token, post_photo

pytestmark = pytest.mark.browser

PAGES = ["slots.html", "slot.html?id=slot-001", "slot.html?id=slot-002", "stats.html", "settings.html"]


async def a_configured_booth(http: httpx.AsyncClient, settings: Settings) -> None:
    """slot-001 frames photos into a template and has served one booth post, so every page has content."""
    token = await operator_token(http, settings.credentials_path)
    headers = {"Authorization": f"Bearer {token}"}
    files = {"file": ("frame.png", frame_template(), "image/png")}
    template = await http.post("/api/media/register", files=files, data={"purpose": "template"}, headers=headers)
    assert template.status_code == 200, template.text
    settings_json = {"template_media_id": template.json()["id"], "x": 60, "y": 50}
    r = await configure_slot(http, token, "slot-001", "local", "frame", settings_json, name="Wedding frame")
    assert r.status_code == 200, r.text
    password = credentials(settings.credentials_path)["ingest_password"]
    assert (await post_photo(http, "slot-001", booth_photo(), password)).status_code == 200


async def tour(ui: UI, width_name: str) -> list[str]:
    """Visit every page, screenshot it; answers the pages that scroll sideways."""
    folder = artifacts_dir() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    too_wide = []
    await ui.page.goto(f"{ui.site}/")
    await ui.page.screenshot(path=folder / f"login-{width_name}.png", full_page=True)
    await ui.login()
    for path in PAGES:
        await ui.open(path)
        await ui.page.wait_for_function("!document.body.textContent.includes('Loading…')")
        name = path.replace(".html", "").replace("?id=", "-")
        await ui.page.screenshot(path=folder / f"{name}-{width_name}.png", full_page=True)
        if await ui.page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1"):
            too_wide.append(path)
    return too_wide


@pytest.mark.parametrize(("width_name", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
async def test_every_page_renders_without_console_errors_and_is_screenshotted(
    browser: Browser,
    site: str,
    http: httpx.AsyncClient,
    settings: Settings,
    width_name: str,
    viewport: dict[str, int],
) -> None:
    await a_configured_booth(http, settings)
    ui = await new_ui(browser, site, settings, viewport)
    try:
        too_wide = await tour(ui, width_name)
    finally:
        await ui.context.close()
    assert ui.errors == []
    assert too_wide == [], f"pages wider than the {width_name} viewport"
    shots = sorted((artifacts_dir() / "screenshots").glob(f"*-{width_name}.png"))
    assert len(shots) == len(PAGES) + 1
    for shot in shots:
        assert shot.read_bytes().startswith(b"\x89PNG"), shot
