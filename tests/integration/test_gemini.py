"""The Gemini provider end to end: booth post -> queue -> GeminiProvider -> real google-genai SDK -> the fake
Gemini REST server on loopback. Each operation's wire request, retries, key rotation, the Files API, safety blocks
and the client-side quotas. Provider-level checks are in test_gemini_provider.py."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.providers.gemini.wire import DEFAULT_STYLE_PROMPT
from boothbridge.settings import PROJECT_ROOT, Settings
from local.fakes.gemini_replies import (
    daily_quota_reply,
    error_reply,
    html_reply,
    image_reply,
    no_image_reply,
    result_png,
    safety_reply,
)
from local.fakes.gemini_server import FakeGemini, gemini_server
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo

KEYS = "key-a,key-b"
PLUGIN = "boothbridge.providers.gemini.adapter:GeminiProvider"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


@pytest.fixture
def gemini_limits(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """Parametrise indirectly to run with other catalog `limits` for gemini."""
    return getattr(request, "param", None)


@pytest.fixture
def gemini_keys(request: pytest.FixtureRequest) -> str:
    """Parametrise indirectly to run with other API keys (comma-separated)."""
    return str(getattr(request, "param", KEYS))


@pytest.fixture
def settings_overrides(
    fake: FakeGemini, tmp_path: Path, gemini_limits: dict[str, Any] | None, gemini_keys: str
) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "gemini_api_key": gemini_keys,
        "gemini_base_url": fake.url,
        "provider_plugins": [PLUGIN],
    }
    if gemini_limits is not None:
        catalog = json.loads((PROJECT_ROOT / "configs" / "providers.json").read_text())
        next(p for p in catalog["providers"] if p["id"] == "gemini")["limits"] = gemini_limits
        path = tmp_path / "providers-gemini.json"
        path.write_text(json.dumps(catalog))
        overrides["providers_config"] = path
    return overrides


def random_png(side: int) -> bytes:
    """A PNG of random pixels: it does not compress, so it stays about 3 x side^2 bytes."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


async def register_template(client: httpx.AsyncClient, token: str, data: bytes) -> str:
    r = await client.post(
        "/api/media/register",
        files={"file": ("template.png", data, "image/png")},
        data={"purpose": "template"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def setup_slot(
    client: httpx.AsyncClient, settings: Settings, operation: str, slot_settings: dict[str, Any]
) -> str:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "gemini", operation, slot_settings)
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"])


async def job_row(container: Container, job_id: str) -> Any:
    async with container.engine.connect() as conn:
        query = text("SELECT status, attempt, attempt_errors, cost FROM jobs WHERE id = :id")
        return (await conn.execute(query, {"id": job_id})).one()


async def files_deleted(fake: FakeGemini) -> bool:
    for _ in range(50):
        if not fake.files:
            return True
        await asyncio.sleep(0.05)
    return False


# -- the three operations, end to end --


async def test_change_image_sends_the_photo_then_the_prompt(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    prompt = "Give everyone a party hat."
    pw = await setup_slot(client, settings, "change_image", {"prompt": prompt, "aspect_ratio": "3:4"})
    photo = jpeg(640, 480)
    r = await post_photo(client, "slot-001", photo, pw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.content == fake.default_image

    [call] = fake.generate_calls()
    assert call.method == "POST"
    assert call.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert call.api_key == "key-a" and "key=" not in str(call.query)
    assert call.headers["content-type"] == "application/json"
    assert [p.kind for p in call.parts] == ["inline", "text"]
    assert call.parts[0].mime == "image/jpeg" and call.parts[0].data == photo
    assert call.parts[1].text == prompt
    assert call.json["contents"][0]["role"] == "user"
    assert call.generation_config == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "3:4"}}
    job = await job_row(container, r.headers["x-job-id"])
    assert job.status == "succeeded" and job.attempt == 1
    assert float(job.cost) == pytest.approx(1000 * 0.3 / 1e6 + 1290 * 30.0 / 1e6)  # usageMetadata x pricing


async def test_style_transfer_sends_photo_reference_and_default_prompt_with_model_override(
    client: httpx.AsyncClient, settings: Settings, fake: FakeGemini
) -> None:
    token = await operator_token(client, settings.credentials_path)
    reference = result_png((200, 30, 30), (64, 64))
    reference_id = await register_template(client, token, reference)
    pw = await setup_slot(
        client,
        settings,
        "style_transfer",
        {"reference_media_id": reference_id, "model": "gemini-3-pro-image-preview", "output": {"format": "jpeg"}},
    )
    photo = jpeg(320, 240)
    r = await post_photo(client, "slot-001", photo, pw)
    assert r.status_code == 200, r.text
    # The fake answered PNG; the slot asked for JPEG, so the image was re-encoded.
    assert r.headers["content-type"] == "image/jpeg"
    out = Image.open(io.BytesIO(r.content))
    assert out.format == "JPEG" and out.size == (48, 32)
    pixel = out.convert("RGB").getpixel((24, 16))
    assert isinstance(pixel, tuple)
    red, green, blue = pixel
    assert abs(red - 10) < 8 and abs(green - 200) < 8 and abs(blue - 30) < 8

    [call] = fake.generate_calls()
    assert call.path == "/v1beta/models/gemini-3-pro-image-preview:generateContent"
    assert [(p.kind, p.mime) for p in call.parts] == [("inline", "image/jpeg"), ("inline", "image/png"), ("text", None)]
    assert call.parts[0].data == photo and call.parts[1].data == reference
    assert call.parts[2].text == DEFAULT_STYLE_PROMPT
    assert call.generation_config == {"responseModalities": ["IMAGE"]}  # no aspect ratio set: no imageConfig


async def test_combine_images_sends_photo_overlay_and_prompt(
    client: httpx.AsyncClient, settings: Settings, fake: FakeGemini
) -> None:
    token = await operator_token(client, settings.credentials_path)
    overlay = result_png((0, 0, 250), (80, 60))
    overlay_id = await register_template(client, token, overlay)
    answer = result_png((1, 2, 3), (30, 30))
    fake.script(None, image_reply(answer))
    prompt = "Dress the person from the first image in the jacket from the second image."
    pw = await setup_slot(
        client,
        settings,
        "combine_images",
        {"overlay_media_id": overlay_id, "prompt": prompt, "aspect_ratio": "1:1", "output": {"format": "png"}},
    )
    photo = jpeg(400, 300)
    r = await post_photo(client, "slot-001", photo, pw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.content == answer  # same format: passed through

    [call] = fake.generate_calls()
    assert [p.kind for p in call.parts] == ["inline", "inline", "text"]
    assert call.parts[0].data == photo and call.parts[1].data == overlay and call.parts[2].text == prompt
    assert call.generation_config["imageConfig"] == {"aspectRatio": "1:1"}


# -- retries, keys, Files API, safety, quotas --


async def test_no_image_answer_is_retried_by_the_queue(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    fake.script(None, no_image_reply())
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Make it snow."})
    r = await post_photo(client, "slot-001", jpeg(), pw)
    assert r.status_code == 200, r.text
    assert r.content == fake.default_image
    job = await job_row(container, r.headers["x-job-id"])
    assert job.attempt == 2
    assert [e["code"] for e in job.attempt_errors] == ["no_image"]
    assert len(fake.generate_calls()) == 2


async def test_a_429_moves_the_call_to_the_next_key_in_the_same_attempt(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    fake.script("key-a", error_reply(429, "Resource has been exhausted (e.g. check quota).", retry_delay="30s"))
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Add confetti."})
    r = await post_photo(client, "slot-001", jpeg(color=(0, 0, 0)), pw)
    assert r.status_code == 200, r.text
    job = await job_row(container, r.headers["x-job-id"])
    assert job.attempt == 1 and job.attempt_errors in (None, [])
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b"]

    # key-a rests for its retryDelay: the next photo goes straight to key-b.
    r = await post_photo(client, "slot-001", jpeg(color=(250, 250, 250)), pw)
    assert r.status_code == 200, r.text
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b", "key-b"]


async def test_a_request_over_20_mb_sends_the_largest_image_through_the_files_api(
    client: httpx.AsyncClient, settings: Settings, fake: FakeGemini
) -> None:
    photo, overlay = random_png(2000), random_png(1900)  # ~12 MB and ~10.8 MB: ~30 MB once base64-encoded
    assert len(photo) > len(overlay) > 10_000_000
    token = await operator_token(client, settings.credentials_path)
    overlay_id = await register_template(client, token, overlay)
    pw = await setup_slot(client, settings, "combine_images", {"overlay_media_id": overlay_id, "prompt": "Merge."})
    r = await post_photo(client, "slot-001", photo, pw, filename="big.png", content_type="image/png")
    assert r.status_code == 200, r.text
    assert r.content == fake.default_image

    start, *chunks = fake.uploads()
    assert start.headers["x-goog-upload-protocol"] == "resumable"
    assert start.headers["x-goog-upload-command"] == "start"
    assert start.headers["x-goog-upload-header-content-length"] == str(len(photo))
    assert start.headers["x-goog-upload-header-content-type"] == "image/png"
    assert start.api_key == "key-a"
    assert chunks[-1].headers["x-goog-upload-command"] == "upload, finalize"
    assert b"".join(c.body for c in chunks) == photo

    [call] = fake.generate_calls()
    assert [(p.kind, p.mime) for p in call.parts] == [("file", "image/png"), ("inline", "image/png"), ("text", None)]
    assert call.parts[0].uri is not None and call.parts[0].uri.startswith(f"{fake.url}/v1beta/files/")
    assert call.parts[1].data == overlay
    assert await files_deleted(fake)
    assert len(fake.deleted) == 1


async def test_safety_block_fails_at_once_with_502(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    fake.script(None, safety_reply("IMAGE_SAFETY"))
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Something the filter refuses."})
    r = await post_photo(client, "slot-001", jpeg(), pw)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "provider_failed"
    assert error["details"]["reason"] == "safety_blocked" and error["details"]["attempts"] == 1
    assert len(fake.generate_calls()) == 1
    assert (await job_row(container, r.headers["x-job-id"])).status == "failed"


@pytest.mark.parametrize("gemini_keys", ["key-a"], indirect=True)  # a single key: 3 calls per (1 s) window
@pytest.mark.parametrize("gemini_limits", [{"requests_per_minute": 3, "minute_window_sec": 1.0}], indirect=True)
async def test_the_minute_quota_holds_a_burst_to_the_configured_rate(
    client: httpx.AsyncClient, settings: Settings, fake: FakeGemini
) -> None:
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Sepia."})
    started = time.monotonic()
    for i in range(4):
        r = await post_photo(client, "slot-001", jpeg(color=(i * 60, 100, 100)), pw)
        assert r.status_code == 200, r.text
    calls = fake.generate_calls()
    assert len(calls) == 4
    assert calls[2].at - calls[0].at < 1.0  # the first three went at once
    assert calls[3].at - calls[0].at >= 0.95  # the fourth waited for the window to slide
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("gemini_limits", [{"requests_per_day": 1}], indirect=True)
async def test_an_exhausted_daily_quota_fails_without_calling_gemini(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Sepia."})
    for color in ((0, 0, 0), (120, 120, 120)):  # two keys, one call a day each
        assert (await post_photo(client, "slot-001", jpeg(color=color), pw)).status_code == 200
    r = await post_photo(client, "slot-001", jpeg(color=(240, 240, 240)), pw)
    assert r.status_code == 502, r.text
    details = r.json()["error"]["details"]
    assert {k: details[k] for k in ("job_id", "reason", "attempts")} == {
        "job_id": r.headers["x-job-id"],
        "reason": "quota_exhausted",
        "attempts": 1,
    }
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b"]


# -- field reports: a daily quota Gemini says is spent; an HTML page instead of an answer --


@pytest.mark.parametrize("gemini_keys", ["key-a"], indirect=True)
async def test_gemini_saying_the_daily_quota_is_spent_fails_the_job_at_once_with_one_paid_call(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    fake.script("key-a", daily_quota_reply("47s"))  # a retry would succeed here: it must not happen
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Sepia."})
    r = await post_photo(client, "slot-001", jpeg(color=(10, 10, 10)), pw)
    assert r.status_code == 502, r.text  # not a 504 after waiting out the booth's deadline
    assert r.json()["error"]["details"]["reason"] == "quota_exhausted"
    job = await job_row(container, r.headers["x-job-id"])
    assert (job.status, job.attempt) == ("failed", 1)
    [error] = job.attempt_errors
    assert error["code"] == "quota_exhausted"
    assert "GenerateRequestsPerDayPerProjectPerModel" in error["message"] and "limit 2000" in error["message"]
    assert len(fake.generate_calls()) == 1

    r = await post_photo(client, "slot-001", jpeg(color=(90, 90, 90)), pw)  # the next booth photo: no call at all
    assert r.status_code == 502 and r.json()["error"]["details"]["reason"] == "quota_exhausted"
    assert len(fake.generate_calls()) == 1


async def test_a_day_spent_key_is_left_alone_while_the_other_key_serves(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    fake.script("key-a", daily_quota_reply())
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Sepia."})
    for i in range(3):
        r = await post_photo(client, "slot-001", jpeg(color=(i * 70, 20, 20)), pw)
        assert r.status_code == 200, r.text
        job = await job_row(container, r.headers["x-job-id"])
        assert job.attempt == 1 and job.attempt_errors in (None, [])
    assert [c.api_key for c in fake.generate_calls()] == ["key-a", "key-b", "key-b", "key-b"]


async def test_an_html_page_with_status_200_is_a_bad_answer_that_the_queue_retries(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    fake.script(None, html_reply(200))
    pw = await setup_slot(client, settings, "change_image", {"prompt": "Make it snow."})
    r = await post_photo(client, "slot-001", jpeg(), pw)
    assert r.status_code == 200, r.text
    assert r.content == fake.default_image
    job = await job_row(container, r.headers["x-job-id"])
    assert job.attempt == 2
    assert [e["code"] for e in job.attempt_errors] == ["bad_answer"]  # not provider_internal_error
    assert "<!DOCTYPE html>" in job.attempt_errors[0]["message"]
    assert len(fake.generate_calls()) == 2
