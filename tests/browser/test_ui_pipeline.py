"""The slot page composes pipelines (issue 14 item 8) in a real browser: three steps with an alternative and a
finishing stage, tested unsaved (each step's image with its time and cost), saved, reloaded, and posted to by a
booth; steps moved (from the keyboard) and removed with the variants following their step; errors at a step-2,
alternative and finishing field; a chain longer than the booth's wait flagged (item 7); the page at phone width."""

from __future__ import annotations

import io
import re
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, Page

from boothbridge.settings import Settings
from tests.browser.conftest import PHONE, UI, artifacts_dir, new_ui
from tests.browser.pictures import as_file, booth_photo, frame_template
from tests.browser.test_ui_slot import drop_file, saved_slot
from tests.support.booth import credentials, operator_token, post_photo

pytestmark = pytest.mark.browser

PAD = (0x11, 0x22, 0x33)
FRAME = (120, 40, 160)  # frame_template's border
FINISHING = {"width": 600, "height": 400, "fit": "pad", "pad_color": "#112233", "format": "jpeg", "quality": 85,
             "max_bytes": 200_000}  # fmt: skip


async def put_slot(http: httpx.AsyncClient, settings: Settings, slot_id: str, body: dict[str, Any]) -> None:
    token = await operator_token(http, settings.credentials_path)
    r = await http.put(f"/api/slots/{slot_id}", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


async def sizes(page: Page, selector: str) -> list[list[int]]:
    """The natural sizes of the images `selector` finds, once every one of them has loaded."""
    await page.wait_for_function(
        "(s) => [...document.querySelectorAll(s)].every((img) => img.complete && img.naturalWidth > 0)", arg=selector
    )
    found: list[list[int]] = await page.eval_on_selector_all(
        selector, "(imgs) => imgs.map((img) => [img.naturalWidth, img.naturalHeight])"
    )
    return found


async def ops(page: Page) -> list[str]:
    """Each step's operation as the page shows it, in order."""
    found: list[str] = await page.eval_on_selector_all(
        "li.step", "(items) => items.map((li) => li.querySelector('.choice select[id$=operation]').value)"
    )
    return found


def near(pixel: Any, want: tuple[int, int, int], tolerance: int = 14) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, want, strict=True))


async def test_compose_three_steps_with_an_alternative_and_finishing_test_save_reload_and_a_booth_post(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-001")
    await page.wait_for_selector("#save-btn:enabled")
    await page.fill("#slot-name", "Square, resized, framed")
    await page.select_option("#provider", "local")
    await page.select_option("#operation", "reframe")
    await page.select_option("#setting-aspect_ratio", "1:1")  # 480x300 cropped: 300x300

    await page.click("#add-step")
    assert await page.evaluate("document.activeElement.id") == "step-1-provider"  # focus follows the new step
    await page.select_option("#step-1-provider", "local")
    await page.select_option("#step-1-operation", "resize")
    await page.fill("#step-1-setting-width", "500")  # 500x500
    await page.click("#step-1-add-alt")  # starts as a copy of the step: another operation here
    assert await page.input_value("#step-1-alt-0-operation") == "resize"
    await page.select_option("#step-1-alt-0-operation", "white_balance")
    await page.fill("#step-1-alt-0-setting-strength", "0.5")

    await page.click("#add-step")
    await page.select_option("#step-2-provider", "local")
    await page.select_option("#step-2-operation", "white_balance")
    assert await page.text_content("#step-2-title") == "Step 3 · Local (offline) · White balance"
    assert await page.text_content("#provider-title") == "Local (offline) → Local (offline) → Local (offline)"

    await page.fill("#finishing-width", "600")
    await page.fill("#finishing-height", "400")
    await page.select_option("#finishing-fit", "pad")
    await page.fill("#finishing-pad_color", "#112233")
    await page.select_option("#finishing-format", "jpeg")
    await page.fill("#finishing-quality", "85")
    await page.fill("#finishing-max_bytes", "200000")
    await drop_file(page, "#finishing-overlay_media_id", "frame.png", "image/png", frame_template())
    await page.wait_for_selector("#finishing-overlay_media_id[data-state='filled'] img.-shown")
    await page.wait_for_function("() => !document.querySelector('#save-btn').disabled")

    # Test runs the unsaved chain: each step's image, time and cost, then the finished result.
    await page.set_input_files("#test-photo-zone-input", files=[as_file("booth.jpg", "image/jpeg", booth_photo())])  # type: ignore[list-item]
    await page.wait_for_selector("#test-photo-zone[data-state='filled']")
    await page.click("#test-btn")
    await page.wait_for_selector("#test-result:not([hidden])", timeout=30_000)
    items = await page.eval_on_selector_all(
        "#test-steps li.step-result",
        "(lis) => lis.map((li) => [li.dataset.step, li.dataset.alternative, li.dataset.status])",
    )
    assert items == [["0", "0", "succeeded"], ["1", "0", "succeeded"], ["2", "0", "succeeded"]]
    # Step 3's image is the job's result as the job view reports the last step's output (after finishing).
    assert (await sizes(page, "#test-steps img.step-img"))[:2] == [[300, 300], [500, 500]]
    captions = await page.eval_on_selector_all("#test-steps figcaption", "(cs) => cs.map((c) => c.textContent)")
    for n, caption in enumerate(captions, start=1):
        assert re.fullmatch(rf"Step {n}Local \(offline\) · .+ · \d+(\.\d)? m?s · cost 0\.00 USD", caption), caption
    assert await sizes(page, "#test-result-img") == [[600, 400]]
    folder = artifacts_dir() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=folder / "slot-pipeline-test-1280px.png", full_page=True)  # not "*-desktop.png"
    assert (await saved_slot(http, settings, "slot-001"))["is_configured"] is False, "Test must not save"

    await page.click("#save-btn")
    await page.wait_for_selector(".toast >> text=Saved.")
    slot = await saved_slot(http, settings, "slot-001")
    assert [(s["provider_id"], s["operation_id"]) for s in slot["steps"]] == [
        ("local", "reframe"),
        ("local", "resize"),
        ("local", "white_balance"),
    ]
    assert slot["steps"][1]["settings_json"]["width"] == 500
    [alternative] = slot["steps"][1]["alternatives"]
    assert (alternative["operation_id"], alternative["settings_json"]["strength"]) == ("white_balance", 0.5)
    overlay = slot["finishing"].pop("overlay_media_id")
    assert re.fullmatch(r"[0-9a-f-]{36}", overlay)
    assert slot["finishing"] == FINISHING

    await page.reload()
    await page.wait_for_selector("#save-btn:enabled")
    assert await ops(page) == ["reframe", "resize", "white_balance"]
    assert await page.input_value("#step-1-setting-width") == "500"
    assert await page.input_value("#step-1-alt-0-operation") == "white_balance"
    assert await page.input_value("#step-1-alt-0-setting-strength") == "0.5"
    assert await page.input_value("#finishing-fit") == "pad"
    assert await page.input_value("#finishing-pad_color") == "#112233"
    assert await page.input_value("#finishing-max_bytes") == "200000"
    await page.wait_for_selector("#finishing-overlay_media_id[data-state='filled'] img.-shown")

    # The saved chain is what the booth gets: exactly the print size, under the cap, padded, framed.
    r = await post_photo(http, "slot-001", booth_photo(), credentials(settings.credentials_path)["ingest_password"])
    assert r.status_code == 200, r.text
    assert len(r.content) <= 200_000
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("JPEG", (600, 400))
    rgb = image.convert("RGB")
    assert near(rgb.getpixel((20, 200)), FRAME)  # the overlay's border
    assert near(rgb.getpixel((80, 200)), PAD)  # inside the frame's window, left of the 400x400 photo
    assert [e for e in ui.errors if "uncaught" in e] == []


async def test_move_a_step_up_from_the_keyboard_remove_one_save_and_variants_follow_their_step(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    gemini = {"provider_id": "gemini", "operation_id": "change_image", "settings_json": {"prompt": "a party"}}
    await put_slot(http, settings, "slot-002", {
        "name": "Three steps",
        "steps": [
            {"provider_id": "local", "operation_id": "reframe", "settings_json": {"aspect_ratio": "1:1"}},
            gemini,
            {"provider_id": "local", "operation_id": "white_balance", "settings_json": {}},
        ],
        "variants": {"winter": {"1": {"prompt": "a snowy party"}}},
        "variant_field": "style",
    })  # fmt: skip
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-002")
    await page.wait_for_selector("#save-btn:enabled")
    assert await ops(page) == ["reframe", "change_image", "white_balance"]
    assert await page.input_value("#variant-0-name") == "winter"
    assert await page.input_value("#variant-0-step-1-prompt") == "a snowy party"
    assert await page.input_value("#variant-field") == "style"
    assert await page.text_content("#variant-example") == f"{ui.site}/ingest/slot-002?variant=winter"
    assert await page.is_disabled("#step-0-up") and await page.is_disabled("#step-2-down")

    await page.focus("#step-1-up")
    await page.keyboard.press("Enter")
    assert await ops(page) == ["change_image", "reframe", "white_balance"]
    assert await page.evaluate("document.activeElement.id") == "step-0-down"  # step 1 cannot go up: its other button
    assert await page.input_value("#variant-0-step-0-prompt") == "a snowy party"  # the override moved with its step
    assert await page.input_value("#setting-prompt") == "a party"  # step 1's ids are the page's historic ones

    await page.click("button[aria-label='Remove step 3']")
    assert await ops(page) == ["change_image", "reframe"]
    assert await page.evaluate("document.activeElement.id") == "step-1-title"
    assert await page.is_disabled("#step-0-up")

    await page.click("#save-btn")
    await page.wait_for_selector(".toast >> text=Saved.")
    slot = await saved_slot(http, settings, "slot-002")
    assert [s["operation_id"] for s in slot["steps"]] == ["change_image", "reframe"]
    assert (slot["provider_id"], slot["operation_id"]) == ("gemini", "change_image")  # step 1 mirrored
    assert slot["variants"] == {"winter": {"0": {"prompt": "a snowy party"}}}
    assert slot["variant_field"] == "style"
    await page.reload()
    await page.wait_for_selector("#save-btn:enabled")
    assert await ops(page) == ["change_image", "reframe"]


async def test_errors_are_shown_at_a_step_2_field_an_alternative_and_finishing_and_nothing_is_saved(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-003")
    await page.select_option("#provider", "local")
    await page.select_option("#operation", "reframe")
    await page.select_option("#setting-aspect_ratio", "4:3")
    await page.click("#add-step")
    await page.click("#save-btn")  # step 2 has no provider: refused here, before any request
    assert await page.text_content("#step-1-provider-error") == "Choose a provider."
    assert await page.evaluate("document.activeElement.id") == "step-1-provider"

    await page.select_option("#step-1-provider", "local")
    await page.select_option("#step-1-operation", "resize")
    await page.fill("#step-1-setting-width", "5")  # the schema's minimum is 16: the server says so, at the field
    await page.click("#save-btn")
    await page.wait_for_function("document.querySelector('#step-1-setting-width-error').textContent !== ''")
    assert "16" in (await page.text_content("#step-1-setting-width-error") or "")
    assert await page.get_attribute("#step-1-setting-width", "aria-invalid") == "true"
    assert await page.text_content("#setting-aspect_ratio-error") == ""  # step 1's field is not blamed

    await page.fill("#step-1-setting-width", "400")
    await page.click("#step-1-add-alt")
    await page.fill("#step-1-alt-0-setting-width", "8")
    await page.click("#save-btn")
    await page.wait_for_function("document.querySelector('#step-1-alt-0-setting-width-error').textContent !== ''")
    assert await page.get_attribute("#step-1-setting-width", "aria-invalid") is None

    await page.fill("#step-1-alt-0-setting-width", "300")
    await page.fill("#finishing-max_bytes", "5")
    await page.click("#save-btn")
    await page.wait_for_function("document.querySelector('#finishing-max_bytes-error').textContent !== ''")
    assert await page.get_attribute("#finishing-max_bytes", "aria-invalid") == "true"
    assert (await saved_slot(http, settings, "slot-003"))["is_configured"] is False


async def test_a_chain_longer_than_the_booths_wait_is_flagged_with_its_figures(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    change = {"provider_id": "gemini", "operation_id": "change_image", "settings_json": {"prompt": "a party"}}
    await put_slot(http, settings, "slot-004", {"name": "Slow", "steps": [change]})  # Gemini's typical: 12 s
    await put_slot(http, settings, "slot-005", {"name": "Quick", "provider_id": "local", "operation_id": "reframe",
                                                "settings_json": {"aspect_ratio": "1:1"}})  # fmt: skip
    await ui.login()
    await ui.open("slot.html?id=slot-004")
    warning = ui.page.locator("#wait-warning")
    await warning.wait_for(state="visible")
    assert await warning.get_attribute("role") == "status"
    text = await warning.text_content() or ""
    assert "about 12 s" in text and "(10 s)" in text, text  # the browser tests' T_SYNC_RESPONSE is 10 s

    await ui.open("slot.html?id=slot-005")  # a seed-003-shaped slot: one step, no flag
    await ui.page.wait_for_selector("#save-btn:enabled")
    assert await ops(ui.page) == ["reframe"]
    assert await warning.is_hidden()


async def test_the_composed_page_fits_a_phone(
    browser: Browser, site: str, http: httpx.AsyncClient, settings: Settings
) -> None:
    step = {"provider_id": "gemini", "operation_id": "change_image", "settings_json": {"prompt": "a party"},
            "alternatives": [{"provider_id": "turbotext", "operation_id": "change_image",
                              "settings_json": {"prompt": "a party"}}]}  # fmt: skip
    await put_slot(http, settings, "slot-006", {
        "name": "Phone",
        "steps": [step, {"provider_id": "local", "operation_id": "resize", "settings_json": {"width": 800}}],
        "finishing": {"width": 1800, "height": 1200, "fit": "fill", "sharpen": 0.4},
        "variants": {"winter": {"0": {"prompt": "snow"}}, "summer": {"0": {"prompt": "sun"}}},
    })  # fmt: skip
    phone = await new_ui(browser, site, settings, PHONE)
    try:
        await phone.login()
        await phone.open("slot.html?id=slot-006")
        await phone.page.wait_for_selector("#save-btn:enabled")
        assert await phone.page.input_value("#step-0-alt-0-provider") == "turbotext"
        assert await phone.page.input_value("#finishing-sharpen") == "0.4"
        folder = artifacts_dir() / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        # Not named "*-phone.png": test_ui_screens counts those in the same folder.
        await phone.page.screenshot(path=folder / "slot-pipeline-390px.png", full_page=True)
        assert await phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    finally:
        await phone.context.close()
    assert phone.errors == []
