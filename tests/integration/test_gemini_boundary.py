"""What Gemini receives and what is accepted back, through the whole bridge and the real google-genai SDK against
the fake Gemini server: the photo upright without its orientation tag or personal metadata (inline and through the
Files API), and an answer identified by its bytes (a JPEG labelled PNG, a "PNG" that is only its signature)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.providers.gemini.adapter import GeminiProvider
from boothbridge.settings import Settings
from local.fakes.gemini_replies import image_reply
from local.fakes.gemini_server import FakeGemini, gemini_server
from tests.support.booth import configure_slot, credentials, operator_token, post_photo
from tests.support.images import ORIENTATION, PERSONAL_MARKERS, camera_jpeg, encoded, two_tone


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


@pytest.fixture
def settings_overrides(fake: FakeGemini) -> dict[str, Any]:
    return {
        "gemini_api_key": "key-a",
        "gemini_base_url": fake.url,
        "provider_plugins": ["boothbridge.providers.gemini.adapter:GeminiProvider"],
    }


async def _slot(client: httpx.AsyncClient, settings: Settings, slot_settings: dict[str, Any]) -> str:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "gemini", "change_image", {"prompt": "Hats.", **slot_settings})
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"])


def _assert_upright_and_clean(data: bytes) -> None:
    img = Image.open(io.BytesIO(data))
    assert img.size == (800, 1200), "the provider must get the portrait upright"
    assert ORIENTATION not in img.getexif()
    assert not [marker for marker in PERSONAL_MARKERS if marker in data]
    top = img.convert("RGB").getpixel((400, 100))
    assert top[0] > 180 and top[1] < 60, top  # type: ignore[index]


async def test_a_sideways_portrait_reaches_gemini_upright_inline(
    client: httpx.AsyncClient, settings: Settings, fake: FakeGemini
) -> None:
    """The reported input: 1200x800 JPEG with EXIF Orientation 6 on a Gemini slot."""
    pw = await _slot(client, settings, {})
    r = await post_photo(client, "slot-001", camera_jpeg(1200, 800, orientation=6), pw)
    assert r.status_code == 200, r.text
    [call] = fake.generate_calls()
    assert call.parts[0].kind == "inline" and call.parts[0].mime == "image/jpeg"
    assert call.parts[0].data is not None
    _assert_upright_and_clean(call.parts[0].data)


async def test_a_sideways_portrait_reaches_gemini_upright_through_the_files_api(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    provider = container.providers["gemini"]
    assert isinstance(provider, GeminiProvider)
    provider.inline_limit = 1000  # every image goes through the Files API
    pw = await _slot(client, settings, {})
    r = await post_photo(client, "slot-001", camera_jpeg(1200, 800, orientation=6), pw)
    assert r.status_code == 200, r.text
    _start, *chunks = fake.uploads()
    _assert_upright_and_clean(b"".join(c.body for c in chunks))


@pytest.mark.parametrize(("output", "mime"), [(None, "image/jpeg"), ("png", "image/png"), ("jpeg", "image/jpeg")])
async def test_a_jpeg_labelled_png_reaches_the_booth_as_what_it_is(
    client: httpx.AsyncClient, settings: Settings, fake: FakeGemini, output: str | None, mime: str
) -> None:
    """The reported input: Gemini returns JPEG bytes in an inline part labelled image/png."""
    answer = encoded(two_tone(96, 64), "JPEG", quality=90)
    fake.script(None, image_reply(answer, "image/png"))
    pw = await _slot(client, settings, {"output": {"format": output}} if output else {})
    r = await post_photo(client, "slot-001", camera_jpeg(320, 240), pw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == mime
    img = Image.open(io.BytesIO(r.content))
    assert img.format == {"image/jpeg": "JPEG", "image/png": "PNG"}[mime]
    assert img.size == (96, 64)


@pytest.mark.parametrize(
    "answer",
    [
        b"\x89PNG\r\n\x1a\n" + b"this is text, not an image",  # the reported input: the signature, then text
        encoded(Image.effect_noise((96, 64), 60), "PNG")[:2000],  # a real PNG cut short inside its image data
    ],
    ids=["signature-then-text", "truncated-png"],
)
async def test_an_answer_that_does_not_decode_is_a_retried_provider_fault(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini, answer: bytes
) -> None:
    """Such an answer reached the booth as a 200 with 32 garbage bytes and the job counted as succeeded."""
    good = encoded(two_tone(96, 64), "PNG")
    fake.script(None, image_reply(answer, "image/png"), image_reply(good, "image/png"))
    pw = await _slot(client, settings, {})
    r = await post_photo(client, "slot-001", camera_jpeg(320, 240), pw)
    assert r.status_code == 200, r.text
    assert r.content == good
    async with container.engine.connect() as conn:
        job = (
            await conn.execute(
                text("SELECT attempt, attempt_errors FROM jobs WHERE id = :id"), {"id": r.headers["x-job-id"]}
            )
        ).one()
    assert job.attempt == 2
    assert [e["code"] for e in job.attempt_errors] == ["invalid_result"]
    assert job.attempt_errors[0]["retryable"] is True
