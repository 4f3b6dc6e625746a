"""Field faults through the whole bridge (booth post -> queue -> worker -> provider -> booth), real PostgreSQL and
the S3 protocol: photos of every pixel format come back right, camera-sized photos are accepted, and no paid
attempt starts that cannot end before the booth's answer is due."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.images import encoded, png16, png_header_only


async def _slot(client: httpx.AsyncClient, settings: Settings, provider: str, operation: str, **kw: Any) -> str:
    token = await operator_token(client, settings.credentials_path)
    slot_settings = kw.pop("slot_settings", {})
    r = await configure_slot(client, token, "slot-001", provider, operation, slot_settings, **kw)
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"])


def _decoded(r: httpx.Response) -> Image.Image:
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


# ---- pixel formats on a local slot -------------------------------------------------------------------------


async def test_sixteen_bit_greyscale_png_comes_back_mid_grey(client: httpx.AsyncClient, settings: Settings) -> None:
    """The reported input: 800x600 I;16, every pixel 20000 of 65535, on a local slot. It came back white."""
    pw = await _slot(client, settings, "local", "reframe", slot_settings={"aspect_ratio": "4:3"})
    photo = encoded(Image.new("I;16", (800, 600), 20000), "PNG")
    r = await post_photo(client, "slot-001", photo, pw, filename="grey16.png", content_type="image/png")
    assert r.status_code == 200, r.text
    img = _decoded(r).convert("RGB")
    assert img.size == (800, 600)
    assert all(abs(channel - 78) <= 1 for channel in img.getpixel((400, 300))), img.getpixel((400, 300))  # type: ignore[union-attr]


async def test_sixteen_bit_rgb_and_palette_transparency_through_a_local_slot(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    pw = await _slot(
        client, settings, "local", "reframe", slot_settings={"aspect_ratio": "1:1", "output": {"format": "png"}}
    )
    r = await post_photo(client, "slot-001", png16(300, 300, 20000, 2), pw, content_type="image/png")
    assert r.status_code == 200, r.text
    assert _decoded(r).convert("RGB").getpixel((150, 150)) == (78, 78, 78)

    palette = Image.new("P", (300, 300), 1)
    palette.putpalette([0, 0, 0, 30, 90, 200] + [0] * 762)
    palette.paste(0, (0, 0, 150, 300))
    r = await post_photo(client, "slot-001", encoded(palette, "PNG", transparency=0), pw, content_type="image/png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    out = _decoded(r)
    assert out.mode == "RGBA"
    assert out.getpixel((10, 150))[3] == 0  # type: ignore[index]
    assert out.getpixel((290, 150)) == (30, 90, 200, 255)


# ---- camera sizes ------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_61_megapixel_camera_jpeg_is_accepted(client: httpx.AsyncClient, settings: Settings) -> None:
    """The reported input: a full-size 9504x6336 JPEG (61 MP) was refused as image_too_many_pixels."""
    pw = await _slot(client, settings, "local", "resize", slot_settings={"width": 1800})
    r = await post_photo(client, "slot-001", jpeg(9504, 6336, quality=80), pw)
    assert r.status_code == 200, r.text
    assert _decoded(r).size == (1800, 1200)


async def test_a_decompression_bomb_is_still_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    pw = await _slot(client, settings, "local", "reframe", slot_settings={"aspect_ratio": "1:1"})
    r = await post_photo(client, "slot-001", png_header_only(20_000, 20_000), pw, content_type="image/png")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "image_too_many_pixels"
    assert settings.max_image_pixels >= 100_000_000  # every current camera's native size fits the default


# ---- no paid attempt that cannot end in time ---------------------------------------------------------------


async def _calls(job_id: str) -> int:
    return sum(1 for called, _ in SleepyProvider.calls if called == job_id)


@pytest.mark.parametrize("settings_overrides", [{"t_sync_response": 5.0}])
async def test_no_paid_attempt_after_the_booth_got_its_original(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    """Policy `original`: attempts of 1.5 s that always fail, typically 2.5 s. Attempt 2 starts at ~1.5 s
    (could end by ~4 s < 5 s); attempt 3 would start at ~3 s and end after the booth's answer at 5 s, so it is not
    started: the job fails at ~3 s and the booth gets its own photo then, not at 5 s."""
    container.catalog.providers["sleepy"] = _with_typical(container, 2.5)  # the runner reads the same catalog
    pw = await _slot(
        client,
        settings,
        "sleepy",
        "echo",
        slot_settings={"delay_sec": 1.5, "fail_first": 10},
        failure_policy="original",
    )
    started = time.monotonic()
    r = await post_photo(client, "slot-001", jpeg(320, 240), pw)
    elapsed = time.monotonic() - started
    assert r.status_code == 200 and r.headers["x-fallback"] == "original", r.text
    job_id = r.headers["x-job-id"]
    await asyncio.sleep(3.0)  # past the booth's 5 s: nothing more may start
    assert await _calls(job_id) == 2
    assert elapsed < settings.t_sync_response  # answered as soon as no attempt could help, not at T_sync
    async with container.engine.connect() as conn:
        job = (await conn.execute(text("SELECT status, error_message FROM jobs WHERE id = :id"), {"id": job_id})).one()
    assert job.status == "failed"
    assert "could not end before the booth's answer" in job.error_message


def _with_typical(container: Container, typical_sec: float) -> Any:
    from dataclasses import replace

    entry = container.catalog.providers["sleepy"]
    return replace(entry, ingest=replace(entry.ingest, typical_sec=typical_sec))


@pytest.mark.parametrize("settings_overrides", [{"t_sync_response": 3.0}])
async def test_after_a_504_the_job_goes_on_and_a_repost_collects(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    """Policy `error`: the booth gets 504 at T_sync, the job keeps its attempts (a re-post collects the result)."""
    container.catalog.providers["sleepy"] = _with_typical(container, 2.5)
    pw = await _slot(client, settings, "sleepy", "echo", slot_settings={"delay_sec": 1.5, "fail_first": 2})
    photo = jpeg(330, 240)
    r = await post_photo(client, "slot-001", photo, pw)
    assert r.status_code == 504, r.text
    job_id = r.json()["error"]["details"]["job_id"]
    again = await post_photo(client, "slot-001", photo, pw)
    assert again.status_code == 200, again.text
    assert again.headers["x-job-id"] == job_id
    assert await _calls(job_id) == 3


async def test_an_answer_that_is_not_json_is_the_provider_s_fault_not_our_crash(
    client: httpx.AsyncClient, settings: Settings, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    """Any adapter that meets an HTML page where the provider documents JSON: a retried `bad_answer`."""
    pw = await _slot(client, settings, "sleepy", "echo", slot_settings={"html_answer": True})
    r = await post_photo(client, "slot-001", jpeg(300, 200), pw)
    assert r.status_code == 200, r.text
    async with container.engine.connect() as conn:
        job = (
            await conn.execute(
                text("SELECT attempt, attempt_errors FROM jobs WHERE id = :id"), {"id": r.headers["x-job-id"]}
            )
        ).one()
    assert job.attempt == 2
    assert [(e["code"], e["retryable"]) for e in job.attempt_errors] == [("bad_answer", True)]
    assert "crashed" not in caplog.text


@pytest.mark.slow
def test_a_102_megapixel_medium_format_photo_passes_the_ingest_check(settings: Settings) -> None:
    """Another member of the camera-size kind: Fujifilm GFX100's 11648 x 8736 (102 MP), checked as ingest does."""
    from boothbridge.images.upload import inspect_image

    gfx100 = encoded(Image.new("L", (11648, 8736), 90), "JPEG", quality=50)
    info = inspect_image(gfx100, ("image/jpeg",), settings.max_image_pixels)
    assert (info.width, info.height) == (11648, 8736)
