"""The slot page with issue 16's vision operations: a `smart_mask` box and points are typed as JSON lists (the
schema's arrays), refused at their field when they are not lists, saved as numbers, and shown again on reload."""

from __future__ import annotations

import httpx
import pytest

from boothbridge.settings import Settings
from tests.browser.conftest import UI
from tests.browser.test_ui_slot import saved_slot

pytestmark = pytest.mark.browser


async def test_a_smart_mask_box_and_points_are_typed_as_json_lists_checked_saved_and_shown_again(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-006")
    await page.select_option("#provider", "local")
    await page.select_option("#operation", "smart_mask")

    await page.fill("#setting-bbox", "[10, 20, 300")  # not JSON: refused here, before any request
    await page.click("#save-btn")
    await page.wait_for_selector("#setting-bbox-error:text('must be a JSON list')")
    assert await page.get_attribute("#setting-bbox", "aria-invalid") == "true"
    assert (await saved_slot(http, settings, "slot-006"))["is_configured"] is False

    await page.fill("#setting-bbox", '{"x": 1}')  # JSON, but not a list
    await page.click("#save-btn")
    await page.wait_for_selector("#setting-bbox-error:text('must be a JSON list')")

    await page.fill("#setting-bbox", "[10, 20, 300]")  # a list the schema refuses (3 numbers): the server says so
    await page.click("#save-btn")
    await page.wait_for_function("document.querySelector('#setting-bbox-error').textContent !== ''")
    assert (await saved_slot(http, settings, "slot-006"))["is_configured"] is False

    await page.fill("#setting-bbox", "[10, 20, 300, 400]")
    await page.fill("#setting-points", "[[150, 200], [160, 90]]")
    await page.click("#save-btn")
    await page.wait_for_selector(".toast >> text=Saved.")
    slot = await saved_slot(http, settings, "slot-006")
    assert (slot["provider_id"], slot["operation_id"]) == ("local", "smart_mask")
    assert slot["settings_json"]["bbox"] == [10, 20, 300, 400]
    assert slot["settings_json"]["points"] == [[150, 200], [160, 90]]
    assert "background_points" not in slot["settings_json"]  # left empty: not sent

    await ui.open("slot.html?id=slot-006")
    assert await page.input_value("#setting-bbox") == "[10,20,300,400]"
    assert await page.input_value("#setting-points") == "[[150,200],[160,90]]"
