"""The statistics and settings pages in a real browser: a booth post shows up and a reset clears it; a new
ingest password from the settings page locks the old one out at the ingest URL."""

from __future__ import annotations

import httpx
import pytest

from boothbridge.settings import Settings
from tests.browser.conftest import UI
from tests.browser.pictures import booth_photo
from tests.support.booth import configure_slot, credentials, operator_token, post_photo

pytestmark = pytest.mark.browser


async def reframe_slot_with_posts(http: httpx.AsyncClient, settings: Settings, slot_id: str, posts: int) -> str:
    """Configure the slot (local reframe) and post `posts` booth photos to it; answers the ingest password."""
    token = await operator_token(http, settings.credentials_path)
    r = await configure_slot(http, token, slot_id, "local", "reframe", {"aspect_ratio": "1:1"})
    assert r.status_code == 200, r.text
    password: str = credentials(settings.credentials_path)["ingest_password"]
    for _ in range(posts):
        assert (await post_photo(http, slot_id, booth_photo(), password)).status_code == 200
    return password


async def cell(ui: UI, slot_id: str, column: str) -> str:
    return (await ui.page.text_content(f"tr[data-slot='{slot_id}'] td[data-col='{column}']")) or ""


async def test_a_booth_post_shows_on_the_statistics_page_and_reset_clears_it(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    await reframe_slot_with_posts(http, settings, "slot-001", posts=1)
    assert (await post_photo(http, "slot-001", booth_photo(), "wrong-password")).status_code == 401

    await ui.login()
    await ui.page.click("a[aria-label='Statistics']")
    await ui.page.wait_for_url("**/stats.html")
    await ui.page.wait_for_selector("tr[data-slot='slot-001']")
    assert await cell(ui, "slot-001", "requests") == "2"
    assert await cell(ui, "slot-001", "processed") == "1"
    assert await cell(ui, "slot-001", "errors") == "50.0 %"
    assert await cell(ui, "slot-001", "last-reset") == "—"
    # Local work is free, priced in the catalog's currency for the local provider.
    assert await cell(ui, "slot-001", "last-cost") == "0.00 USD"
    assert await cell(ui, "slot-001", "total-cost") == "0.00 USD"
    assert await cell(ui, "slot-002", "total-cost") == "0.00"  # nothing spent: no currency to name
    assert await ui.page.text_content("#all-time") == "1"
    await ui.page.wait_for_function("document.querySelector('#chart-summary').textContent !== ''")
    summary = await ui.page.text_content("#chart-summary")
    assert summary == "2 requests and 1 errors in the last 14 days."
    assert await ui.page.locator("#chart svg rect.bar-req").count() == 14

    await ui.page.click("button[data-reset='slot-001']")
    await ui.page.click("dialog[open] button:text('Reset')")
    await ui.page.wait_for_selector(".toast >> text=Statistics of reframe slot reset.")
    await ui.page.wait_for_function(
        "document.querySelector(\"tr[data-slot='slot-001'] td[data-col='requests']\").textContent === '0'"
    )
    assert await cell(ui, "slot-001", "processed") == "0"
    assert await cell(ui, "slot-001", "last-reset") != "—"
    assert await ui.page.text_content("#all-time") == "1", "the all-time count keeps its history"


async def test_cancelling_the_reset_dialog_keeps_the_figures(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    await reframe_slot_with_posts(http, settings, "slot-002", posts=1)
    await ui.login()
    await ui.open("stats.html")
    await ui.page.click("button[data-reset='slot-002']")
    await ui.page.keyboard.press("Escape")
    await ui.page.wait_for_selector("dialog", state="detached")
    await ui.open("stats.html")
    assert await cell(ui, "slot-002", "requests") == "1"


async def test_a_new_ingest_password_from_the_settings_page_locks_the_old_one_out(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    old = await reframe_slot_with_posts(http, settings, "slot-001", posts=1)

    await ui.login()
    await ui.page.click("a[aria-label='Settings']")
    await ui.page.wait_for_url("**/settings.html")
    await ui.page.wait_for_selector("#save-btn:enabled")  # enabled once the current settings are shown
    await ui.page.fill("#ingest-password", "abc")  # too short: refused at the field, nothing sent
    await ui.page.click("#save-btn")
    assert await ui.page.text_content("#ingest-password-error") == "At least 6 characters."
    await ui.page.fill("#ingest-password", "booth-password-2")
    await ui.page.click("#save-btn")
    await ui.page.wait_for_selector(".toast >> text=Saved. Booths must now send the new ingest password.")

    refused = await post_photo(http, "slot-001", booth_photo(), old)
    assert refused.status_code == 401, refused.text
    assert (await post_photo(http, "slot-001", booth_photo(), "booth-password-2")).status_code == 200


async def test_settings_save_keys_masked_and_timing_and_clear_the_media_cache(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    await ui.login()
    await ui.open("settings.html")
    await ui.page.fill("#key-gemini", "AIzaSyExampleKey0000000000001234")
    await ui.page.fill("#t-sync", "30")
    await ui.page.fill("#result-ttl", "24")
    await ui.page.click("#save-btn")
    await ui.page.wait_for_selector(".toast >> text=Saved.")
    hint = await ui.page.text_content("#key-gemini-hint")
    assert hint is not None and "1234" in hint and "AIzaSyExampleKey" not in hint  # masked, never in clear
    assert await ui.page.input_value("#key-gemini") == ""
    token = await operator_token(http, settings.credentials_path)
    stored = (await http.get("/api/settings", headers={"Authorization": f"Bearer {token}"})).json()
    assert stored["t_sync_response"] == 30 and stored["result_ttl_sec"] == 24 * 3600
    assert stored["provider_keys"]["gemini"]["source"] == "settings"

    # A key saved here can be removed again (the environment's, if any, applies).
    await ui.page.check("#key-gemini-remove")
    await ui.page.click("#save-btn")
    await ui.page.wait_for_function("document.querySelector('#key-gemini-hint').textContent.includes('not set')")
    stored = (await http.get("/api/settings", headers={"Authorization": f"Bearer {token}"})).json()
    assert stored["provider_keys"]["gemini"] == {"configured": False, "source": "none", "masked": []}

    await ui.page.click("#clear-cache")
    await ui.page.click("dialog[open] button:text('Delete results')")
    await ui.page.wait_for_selector(".toast >> text=Media cache cleared")
