"""Issue 16's "Show" item 2, end to end through ingest: a booth slot `local remove_background` → `local
replace_background` onto an event template → finishing answers a DSLR-shaped post with the person on the new
background. Real PostgreSQL, S3 on moto, the slot configured with `PUT /api/slots/{id}` (`steps`), the template
uploaded through the media API, the photo posted as DSLR Remote Pro posts it.

The photo is scikit-image's astronaut, cropped to 3:2 and enlarged to 3000x2000 (a camera's shape, and past the
segmentation's 1024 px working copy), so the pixels checked are known: her face and suit must show at their
places on the template, the old wall behind her must not.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import httpx
import pytest
from PIL import Image
from skimage import data as samples

from boothbridge.settings import Settings
from tests.support.booth import credentials, operator_token, post_photo

CROP_TOP = 40  # the 3:2 crop of the 512x512 astronaut: rows 40..381
ENLARGE = 3000 / 512  # the posted photo's pixels per astronaut pixel
TEMPLATE_SIZE = (1800, 1200)
EVENT_COLOUR = (120, 40, 160)
PLACE_X, PLACE_Y, SCALE = 300, 400, 0.4  # the person 1200x800 on the template
FINISH = 2 / 3  # finishing at 1200x800
# Astronaut pixels (512x512 coordinates): her face, her suit; the wall and the flag behind her.
FACE, SUIT = (225, 100), (200, 330)
WALL, FLAG = (100, 100), (40, 150)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Step 1's cut-out crosses to step 2 as a 6 MP RGBA PNG, which takes seconds to write and read again when the
    # suite shares the machine's cores: the booth waits as long as the product allows (120 s), not the suite's 10 s.
    return {"t_sync_response": 120}


@functools.cache
def camera_photo() -> bytes:
    """The astronaut cropped to 3:2 and enlarged to 3000x2000, as a camera JPEG."""
    crop = Image.fromarray(samples.astronaut()).crop((0, CROP_TOP, 512, CROP_TOP + 341))
    buf = io.BytesIO()
    crop.resize((3000, 2000), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def event_template() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", TEMPLATE_SIZE, EVENT_COLOUR).save(buf, "PNG")
    return buf.getvalue()


def on_answer(xy: tuple[int, int]) -> tuple[int, int]:
    """Where astronaut pixel `xy` lands in the booth's answer: enlarged, placed, scaled, finished."""
    x = PLACE_X + xy[0] * ENLARGE * SCALE
    y = PLACE_Y + (xy[1] - CROP_TOP) * ENLARGE * SCALE
    return round(x * FINISH), round(y * FINISH)


def astronaut_colour(xy: tuple[int, int]) -> tuple[int, int, int]:
    """The astronaut's colour at `xy`, averaged over 5x5 (the answer is resampled and JPEG-coded)."""
    patch = samples.astronaut()[xy[1] - 2 : xy[1] + 3, xy[0] - 2 : xy[0] + 3].reshape(-1, 3).mean(axis=0)
    return int(patch[0]), int(patch[1]), int(patch[2])


def near(pixel: Any, colour: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def step(operation_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": "local", "operation_id": operation_id, "settings_json": settings, "alternatives": []}


async def test_a_booth_slot_puts_the_guest_onto_the_event_background(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.post(
        "/api/media/register",
        files={"file": ("event.png", event_template(), "image/png")},
        data={"purpose": "template"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    template_id = r.json()["id"]
    placement = {"template_media_id": template_id, "x": PLACE_X, "y": PLACE_Y, "scale": SCALE}
    finishing = {"width": 1200, "height": 800, "fit": "fill", "format": "jpeg"}
    r = await client.put(
        "/api/slots/slot-001",
        json={
            "name": "green screen without the green",
            "steps": [step("remove_background", {"feather_px": 3}), step("replace_background", placement)],
            "finishing": finishing,
        },
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    password = str(credentials(settings.credentials_path)["ingest_password"])

    r = await post_photo(client, "slot-001", camera_photo(), password)

    assert r.status_code == 200, r.text
    assert "x-fallback" not in r.headers
    assert r.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("JPEG", (1200, 800))
    rgb = image.convert("RGB")
    for person in (FACE, SUIT):
        assert near(rgb.getpixel(on_answer(person)), astronaut_colour(person)), (
            person,
            rgb.getpixel(on_answer(person)),
        )
    for background in (WALL, FLAG):  # the old background gave way to the event's
        assert near(rgb.getpixel(on_answer(background)), EVENT_COLOUR), (
            background,
            rgb.getpixel(on_answer(background)),
        )
    for corner in ((20, 20), (1180, 40), (100, 780)):  # the template where no person was placed
        assert near(rgb.getpixel(corner), EVENT_COLOUR, 12), corner

    job = (await client.get(f"/api/jobs/{r.headers['x-job-id']}", headers=auth(token))).json()
    assert (job["status"], job["step_count"]) == ("succeeded", 2)
    assert [(s["index"], s["provider_id"], s["operation_id"], s["status"]) for s in job["steps"]] == [
        (0, "local", "remove_background", "succeeded"),
        (1, "local", "replace_background", "succeeded"),
    ]
