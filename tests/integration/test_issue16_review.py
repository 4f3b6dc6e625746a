"""Issue 16 review (a newcomer's attacks on ArtMancer's API through the emulator, with its worker running; real
PostgreSQL, S3 on moto, the Gemini fake): each test is a defect found by using the product, and another member of
the same kind.

- a smart-mask whose point or box fits no part of the image is the caller's mistake: 400 `invalid_settings`
  (naming the field), not 502 `provider_failed`;
- an insertion's mask or reference image that does not decode, or has too many pixels, is 400 here as every other
  input error of this API (README "ArtMancer API": answered 400 here, 422 in the task API), not 422.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from boothbridge.bootstrap import Container
from local.fakes.gemini_server import FakeGemini, gemini_server
from tests.integration.test_artmancer_api import PLUGIN, b64, box_mask, new_key, png_of


def scene() -> bytes:
    """A grey 120 x 90 photo with a red square object at (40, 30)-(80, 60)."""
    img = Image.new("RGB", (120, 90), (128, 128, 128))
    img.paste((220, 30, 30), (40, 30, 80, 60))
    return png_of(img)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


@pytest.fixture
def settings_overrides(gemini: FakeGemini) -> dict[str, Any]:
    return {
        "gemini_api_key": "key-a",
        "gemini_base_url": gemini.url,
        "provider_plugins": [PLUGIN],
        "api_key_rate_limit": "100000/minute",
        "artmancer_wait_sec": 20.0,
        "max_image_pixels": 1_000_000,
    }


@pytest.fixture
async def key(client: httpx.AsyncClient, container: Container) -> dict[str, str]:
    return await new_key(client, container)


@pytest.mark.parametrize(
    "where",
    [
        {"points": [[120, 45]]},
        {"points": [[60, 45]], "background_points": [[5, 90.5]]},
        {"bbox": [130, 0, 200, 80]},
        {"bbox": [10, 10, 10.5, 10.5]},
    ],
)
async def test_a_smart_mask_prompt_outside_the_image_is_400(
    client: httpx.AsyncClient, key: dict[str, str], where: dict[str, Any]
) -> None:
    r = await client.post("/api/smart-mask", json={"image": b64(scene()), **where}, headers=key)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_settings"
    assert "120x90" in error["message"]
    assert error["details"]["fields"]  # refused before a task was made (test_issue16_followups: nothing stored)


async def test_a_smart_mask_point_outside_a_cached_image_is_400(client: httpx.AsyncClient, key: dict[str, str]) -> None:
    r = await client.post("/api/smart-mask", json={"image": b64(scene()), "bbox": [34, 24, 86, 66]}, headers=key)
    assert r.status_code == 200, r.text
    again = {"image_id": r.json()["image_id"], "points": [[60, 200]]}
    r = await client.post("/api/smart-mask", json=again, headers=key)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_settings", r.text


def _cut_jpeg() -> bytes:
    """The first half of a 120 x 90 JPEG mask: cut short inside its compressed data."""
    out = io.BytesIO()
    Image.open(io.BytesIO(box_mask((120, 90), (40, 30, 80, 60)))).save(out, "JPEG", quality=95)
    data = out.getvalue()
    return data[: len(data) // 2]


def _huge_png() -> bytes:
    """1100 x 1000 (1.1 MP, over the test's 1 MP limit), one bit per pixel: a few KB."""
    out = io.BytesIO()
    Image.new("1", (1100, 1000), 1).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("conditional_images", [b64(_cut_jpeg())], "image_undecodable"),
        ("reference_image", b64(_cut_jpeg()), "image_undecodable"),
        ("reference_image", b64(_huge_png()), "image_too_many_pixels"),
        ("reference_mask_R", b64(_huge_png()), "image_too_many_pixels"),
    ],
)
async def test_an_insertion_image_that_cannot_be_used_is_400(
    client: httpx.AsyncClient, key: dict[str, str], field: str, value: Any, code: str
) -> None:
    body: dict[str, Any] = {
        "task_type": "insertion",
        "input_image": b64(scene()),
        "conditional_images": [b64(box_mask((120, 90), (40, 30, 80, 60)))],
        "reference_image": b64(png_of(Image.new("RGB", (30, 30), (0, 0, 255)))),
        field: value,
    }
    r = await client.post("/api/generate", json=body, headers=key)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
