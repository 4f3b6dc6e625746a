"""The slot list and the slot page in a real browser: copy the ingest URL, configure a slot with a template image,
test it through the real pipeline, save it, and see errors at their fields."""

from __future__ import annotations

import io
import re
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Page, Route
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.browser.conftest import UI
from tests.browser.pictures import TEMPLATE_SIZE, as_file, b64, booth_photo, frame_template
from tests.support.booth import configure_slot, credentials, operator_token, post_photo

pytestmark = pytest.mark.browser


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """The browser tests' settings, with a test's own through indirect parametrisation."""
    return {**settings_overrides, **getattr(request, "param", {})}


async def drop_file(page: Page, selector: str, name: str, mime: str, data: bytes) -> None:
    """Drag and drop a file onto an element, as a file dragged from the desktop arrives (a DataTransfer)."""
    transfer = await page.evaluate_handle(
        """({ data, name, mime }) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        {"data": b64(data), "name": name, "mime": mime},
    )
    await page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    await page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


async def saved_slot(http: httpx.AsyncClient, settings: Settings, slot_id: str) -> dict[str, Any]:
    """The slot as the API has it (what Save stored)."""
    token = await operator_token(http, settings.credentials_path)
    r = await http.get(f"/api/slots/{slot_id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    slot: dict[str, Any] = r.json()
    return slot


async def media_count(container: Container) -> int:
    async with container.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM media_objects"))).scalar_one())


async def test_copy_puts_the_slots_ingest_url_on_the_clipboard(ui: UI) -> None:
    await ui.login()
    await ui.page.click("button[data-copy='slot-007']")
    await ui.page.wait_for_selector(".toast >> text=Copied")
    assert await ui.page.evaluate("navigator.clipboard.readText()") == f"{ui.site}/ingest/slot-007"


async def test_configure_a_local_frame_slot_test_it_and_save_it(
    ui: UI, http: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    page = ui.page
    await ui.login()
    await page.click("tr[data-slot='slot-001'] a.slot-name")
    await page.wait_for_url("**/slot.html?id=slot-001")
    await page.wait_for_selector("#save-btn:enabled")  # enabled once the slot and the catalog are shown
    # The ingest URL is there before anything is saved.
    assert await page.input_value("#ingest-url") == f"{ui.site}/ingest/slot-001"

    await page.fill("#slot-name", "Wedding frame")
    await page.select_option("#provider", "local")
    assert await page.text_content("#provider-title") == "Local (offline)"
    await page.select_option("#operation", "frame")
    await page.fill("#setting-x", "60")
    await page.fill("#setting-y", "50")
    await page.fill("#setting-scale", "1")
    # The template by drag and drop: uploaded at once, previewed.
    await drop_file(page, "#setting-template_media_id", "frame.png", "image/png", frame_template())
    await page.wait_for_selector("#setting-template_media_id[data-state='filled'] img.-shown")
    await page.wait_for_function("() => !document.querySelector('#save-btn').disabled")
    # The test photo zone works from the keyboard: Enter on it opens the file picker (seen as the click on its
    # file input; the picker itself is held back, as Chromium's file-chooser event is unreliable under load).
    await page.evaluate(
        """document.querySelector('#test-photo-zone-input').addEventListener('click', (event) => {
            window.pickerOpened = true;
            event.preventDefault();
        })"""
    )
    await page.focus("#test-photo-zone")
    await page.keyboard.press("Enter")
    assert await page.evaluate("window.pickerOpened === true")
    await page.set_input_files("#test-photo-zone-input", files=[as_file("booth.jpg", "image/jpeg", booth_photo())])  # type: ignore[list-item]
    await page.wait_for_selector("#test-photo-zone[data-state='filled']")

    await page.click("#test-btn")
    await page.wait_for_selector("#test-result:not([hidden])", timeout=20_000)
    await page.wait_for_function("document.querySelector('#test-result-img').naturalWidth > 0")
    size = await page.evaluate(
        "[document.querySelector('#test-result-img').naturalWidth,"
        " document.querySelector('#test-result-img').naturalHeight]"
    )
    assert tuple(size) == TEMPLATE_SIZE  # the frame's size: the photo was placed into the template
    caption = await page.text_content("#test-result-caption")
    assert caption is not None and re.fullmatch(r"Result · \d+(\.\d)? m?s · cost 0\.00 USD", caption), caption
    slot = await saved_slot(http, settings, "slot-001")
    assert slot["is_configured"] is False, "Test must not save"

    await page.click("#save-btn")
    await page.wait_for_selector(".toast >> text=Saved.")
    await page.reload()
    await page.wait_for_selector("#setting-template_media_id[data-state='filled'] img.-shown")
    assert await page.input_value("#slot-name") == "Wedding frame"
    assert await page.input_value("#provider") == "local"
    assert await page.input_value("#operation") == "frame"
    assert await page.input_value("#setting-x") == "60"

    # The saved slot is what the booth gets.
    r = await post_photo(http, "slot-001", booth_photo(), credentials(settings.credentials_path)["ingest_password"])
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == TEMPLATE_SIZE
    await ui.open("slots.html")
    assert await page.text_content("tr[data-slot='slot-001'] a.slot-name") == "Wedding frame"


@pytest.mark.parametrize("settings_overrides", [{"t_sync_response": 1.5}], indirect=True)
async def test_a_test_past_the_booths_wait_follows_the_jobs_event_stream_without_polling(ui: UI) -> None:
    page = ui.page
    requests: list[tuple[str, str]] = []
    page.on("request", lambda request: requests.append((request.method, request.url)))
    await ui.login()
    await ui.open("slot.html?id=slot-006")
    await page.select_option("#provider", "sleepy")
    await page.select_option("#operation", "echo")
    await page.fill("#setting-delay_sec", "4")  # the booth's wait is 1.5 s: the run answers 504 with the job id
    await page.set_input_files("#test-photo-zone-input", files=[as_file("booth.jpg", "image/jpeg", booth_photo())])  # type: ignore[list-item]
    await page.wait_for_selector("#test-photo-zone[data-state='filled']")
    requests.clear()

    await page.click("#test-btn")
    # Each status shows as the stream brings it: the job runs on past the 504.
    await page.wait_for_selector("#test-status:text('Still running (running)…')", timeout=10_000)
    await page.wait_for_selector("#test-result:not([hidden])", timeout=20_000)
    assert await page.text_content("#test-status") == "Test succeeded (after the booth's wait time)."
    await page.wait_for_function("document.querySelector('#test-result-img').naturalWidth > 0")

    paths = [(method, url.removeprefix(ui.site)) for method, url in requests if "/api/" in url]
    [job_id] = {p.split("/")[3] for _, p in paths if p.startswith("/api/jobs/")}
    job = f"/api/jobs/{job_id}"
    streams = [p for m, p in paths if m == "GET" and p.startswith(f"{job}/events?token=")]
    details = [i for i, (m, p) in enumerate(paths) if (m, p) == ("GET", job)]
    assert len(streams) == 1, paths  # one stream, opened with a stream token
    assert [(m, p) for m, p in paths if p == f"{job}/events/token"] == [("POST", f"{job}/events/token")]
    # No polling: the job's detail is read once, after the stream ended, for its result link and cost.
    assert len(details) == 1, paths
    assert details[0] > paths.index(("GET", streams[0]))


@pytest.mark.parametrize("settings_overrides", [{"t_sync_response": 1.5}], indirect=True)
async def test_a_refused_stream_is_reopened_with_a_fresh_token(ui: UI) -> None:
    page = ui.page
    refused: list[str] = []

    async def refuse_the_first_stream(route: Route) -> None:
        if refused:
            await route.continue_()
            return
        refused.append(route.request.url)  # as an expired token would be: EventSource gives up on a 401
        body = '{"error": {"code": "invalid_token", "message": "the token is invalid or expired", "details": {}}}'
        await route.fulfill(status=401, content_type="application/json", body=body)

    await page.route(re.compile(r".*/api/jobs/[^/]+/events\?token=.*"), refuse_the_first_stream)
    requests: list[tuple[str, str]] = []
    page.on("request", lambda request: requests.append((request.method, request.url.removeprefix(ui.site))))
    await ui.login()
    await ui.open("slot.html?id=slot-008")
    await page.select_option("#provider", "sleepy")
    await page.select_option("#operation", "echo")
    await page.fill("#setting-delay_sec", "4")
    await page.set_input_files("#test-photo-zone-input", files=[as_file("booth.jpg", "image/jpeg", booth_photo())])  # type: ignore[list-item]
    await page.wait_for_selector("#test-photo-zone[data-state='filled']")

    await page.click("#test-btn")
    await page.wait_for_selector("#test-result:not([hidden])", timeout=20_000)
    assert await page.text_content("#test-status") == "Test succeeded (after the booth's wait time)."
    assert len(refused) == 1
    tokens = [p for m, p in requests if m == "POST" and p.endswith("/events/token")]
    streams = [p for m, p in requests if m == "GET" and "/events?token=" in p]
    assert (len(tokens), len(streams)) == (2, 2), requests
    assert streams[0] != streams[1]  # the second stream was opened with a fresh token
    assert len([p for m, p in requests if m == "GET" and re.fullmatch(r"/api/jobs/[^/?]+", p)]) == 1, requests


async def test_save_shows_validation_errors_at_their_fields_and_saves_nothing(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-002")
    await page.select_option("#provider", "local")
    await page.select_option("#operation", "frame")
    await page.click("#save-btn")  # no template: refused here, before any request
    await page.wait_for_selector("#setting-template_media_id-error:text('required')")

    await page.select_option("#operation", "resize")
    await page.fill("#setting-width", "5")  # the schema's minimum is 16: the server says so, at the field
    await page.click("#save-btn")
    await page.wait_for_function("document.querySelector('#setting-width-error').textContent !== ''")
    assert "16" in (await page.text_content("#setting-width-error") or "")
    assert await page.get_attribute("#setting-width", "aria-invalid") == "true"

    await page.select_option("#provider", "")
    await page.click("#save-btn")
    assert await page.text_content("#provider-error") == "Choose a provider."
    slot = await saved_slot(http, settings, "slot-002")
    assert slot["is_configured"] is False


async def test_only_jpg_or_png_is_accepted_and_nothing_is_uploaded_otherwise(ui: UI, container: Container) -> None:
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-003")
    await page.select_option("#provider", "local")
    await page.select_option("#operation", "frame")
    before = await media_count(container)
    await page.set_input_files("#setting-template_media_id-input", files=[as_file("anim.gif", "image/gif", b"GIF89a")])  # type: ignore[list-item]
    await page.wait_for_selector("#setting-template_media_id-error:text('only JPG or PNG images are accepted')")
    assert await page.get_attribute("#setting-template_media_id", "data-state") == "empty"
    assert await media_count(container) == before

    # Remove takes a chosen template away again (keyboard-reachable button).
    await drop_file(page, "#setting-template_media_id", "frame.png", "image/png", frame_template())
    await page.wait_for_selector("#setting-template_media_id[data-state='filled']")
    await page.click("button[aria-label='Remove template image']")
    assert await page.get_attribute("#setting-template_media_id", "data-state") == "empty"


async def test_a_configured_slot_opens_with_its_settings(ui: UI, http: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(http, settings.credentials_path)
    r = await configure_slot(http, token, "slot-004", "local", "reframe", {"aspect_ratio": "16:9", "mode": "pad"})
    assert r.status_code == 200, r.text
    await ui.login()
    assert await ui.page.text_content("tr[data-slot='slot-004'] a.slot-name") == "reframe slot"
    await ui.open("slot.html?id=slot-004")
    assert await ui.page.input_value("#setting-aspect_ratio") == "16:9"
    assert await ui.page.input_value("#setting-mode") == "pad"
    assert await ui.page.input_value("#setting-output-quality") == "92"  # nested object, default shown


async def test_booleans_textareas_and_unset_choices_reach_the_saved_settings(
    ui: UI, http: httpx.AsyncClient, settings: Settings
) -> None:
    page = ui.page
    await ui.login()
    await ui.open("slot.html?id=slot-005")
    await page.select_option("#provider", "local")
    await page.select_option("#operation", "resize")
    await page.fill("#setting-width", "800")
    assert await page.is_checked("#setting-upscale")  # the schema's default
    await page.uncheck("#setting-upscale")
    await page.click("#save-btn")
    await page.wait_for_selector(".toast >> text=Saved.")
    slot = await saved_slot(http, settings, "slot-005")
    assert slot["settings_json"]["width"] == 800
    assert slot["settings_json"]["upscale"] is False
    assert "height" not in slot["settings_json"]

    # Gemini's prompt is a text area; an optional choice without a default can stay unset.
    await page.select_option("#provider", "gemini")
    assert await page.text_content("#provider-title") == "Gemini"
    await page.select_option("#operation", "change_image")
    assert await page.evaluate("document.querySelector('#setting-prompt').tagName") == "TEXTAREA"
    assert await page.input_value("#setting-aspect_ratio") == ""
    await page.fill("#setting-prompt", "Make it look like a watercolour")
    await page.click("#save-btn")
    await page.wait_for_selector(".toast >> text=Saved. >> nth=1")
    slot = await saved_slot(http, settings, "slot-005")
    assert (slot["provider_id"], slot["operation_id"]) == ("gemini", "change_image")
    assert slot["settings_json"]["prompt"] == "Make it look like a watercolour"
    assert "aspect_ratio" not in slot["settings_json"]
