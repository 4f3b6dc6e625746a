"""The settings page's machine clients in a real browser: create an API key by name, see it once (with a warning)
and copy it, find it listed by its prefix, and revoke it after a confirmation; a bad name is shown at the field."""

from __future__ import annotations

import pytest

from tests.browser.conftest import UI

pytestmark = pytest.mark.browser


async def cell(ui: UI, key_id: str, column: str) -> str:
    return (await ui.page.text_content(f"tr[data-key='{key_id}'] td[data-col='{column}']")) or ""


async def test_create_copy_and_revoke_a_key(ui: UI) -> None:
    page = ui.page
    await ui.login()
    await ui.open("settings.html")
    await page.wait_for_selector("#keys-body >> text=No API keys yet.")
    assert await page.is_hidden("#new-key")

    await page.fill("#key-name", "  Gallery kiosk ")
    await page.click("#create-key")
    await page.wait_for_selector("#new-key:not([hidden])")
    key = await page.input_value("#new-key-value")
    assert key.startswith("bbk_") and len(key) == 47
    assert "shown only this once" in ((await page.text_content("#new-key")) or "")
    assert await page.evaluate("document.activeElement.id") == "new-key-value"
    assert await page.input_value("#key-name") == ""

    await page.click("#copy-key")
    await page.wait_for_selector(".toast >> text=API key copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == key

    row = page.locator("#keys-body tr[data-key]")
    await row.wait_for()
    key_id = await row.get_attribute("data-key")
    assert key_id is not None
    assert await cell(ui, key_id, "name") == "Gallery kiosk"
    assert await cell(ui, key_id, "prefix") == f"{key[:12]}…"
    assert await cell(ui, key_id, "last-used") == "never"
    assert await cell(ui, key_id, "status") == "Live"
    assert key not in ((await page.text_content("#keys-table")) or "")

    await page.click("#hide-key")
    assert await page.is_hidden("#new-key") and await page.input_value("#new-key-value") == ""
    await ui.open("settings.html")
    await page.wait_for_selector(f"tr[data-key='{key_id}']")
    assert key not in (await page.content()), "a reloaded page never shows the key again"

    await page.click(f"button[data-revoke='{key_id}']")
    dialog = page.locator("dialog[open]")
    assert "Gallery kiosk" in ((await dialog.text_content()) or "")
    await page.keyboard.press("Escape")  # cancelled: still live
    await page.wait_for_selector("dialog", state="detached")
    assert await cell(ui, key_id, "status") == "Live"

    await page.click(f"button[data-revoke='{key_id}']")
    await page.click("dialog[open] button:text('Revoke')")
    await page.wait_for_selector(".toast >> text=Key “Gallery kiosk” revoked.")
    await page.wait_for_function(
        f"document.querySelector(\"tr[data-key='{key_id}'] td[data-col='status']\").textContent.startsWith('Revoked')"
    )
    assert await page.locator(f"button[data-revoke='{key_id}']").count() == 0
    assert ui.errors == []


async def test_a_bad_name_is_shown_at_the_field(ui: UI) -> None:
    page = ui.page
    await ui.login()
    await ui.open("settings.html")
    await page.click("#create-key")
    await page.wait_for_selector("#key-name-error >> text=Give the key a name.")
    assert await page.get_attribute("#key-name", "aria-invalid") == "true"

    # The browser cannot type a control character into the field; the API's refusal is placed there too.
    await page.evaluate("document.getElementById('key-name').value = 'tab\\there'")
    await page.click("#create-key")
    await page.wait_for_selector("#key-name-error >> text=control characters")
    assert await page.is_hidden("#new-key")
    assert await page.locator("#keys-body tr[data-key]").count() == 0
