"""ArtMancer's smart-mask and extract-object endpoints (seed 002, sections 2 and 3) end to end through the emulator
with its worker running (real PostgreSQL, S3 on moto): each request is a waited task of one `local` step.

- smart-mask from a box with `image`, then with the `image_id` the answer gave (the same cached image, no new
  upload); the mask's pixels: white inside the object, black outside; 400 without bbox/points/auto_detect or with
  both image and image_id; 404 for an image_id that is not the caller's; a task that does not end in time is 504
  `processing_timeout` naming the request, which can then be cancelled; cancel 404/409;
- extract-object: white keeps (opaque, the photo's pixels), black becomes transparent; 400 for a bad mask.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from boothbridge.bootstrap import Container
from tests.integration.test_artmancer_api import b64, box_mask, new_key, png_of
from tests.support.storage import stored_counts


def scene() -> bytes:
    """A grey 120 x 90 photo with a red square object at (40, 30)-(80, 60)."""
    img = Image.new("RGB", (120, 90), (128, 128, 128))
    img.paste((220, 30, 30), (40, 30, 80, 60))
    return png_of(img)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"api_key_rate_limit": "100000/minute", "artmancer_wait_sec": 20.0}


@pytest.fixture
async def key(client: httpx.AsyncClient, container: Container) -> dict[str, str]:
    return await new_key(client, container)


def image_of(text: str) -> Image.Image:
    with Image.open(io.BytesIO(base64.b64decode(text))) as img:
        img.load()
        return img


async def test_smart_mask_from_a_box_then_by_image_id(
    client: httpx.AsyncClient, container: Container, key: dict[str, str]
) -> None:
    body = {"image": b64(scene()), "bbox": [34, 24, 86, 66], "border_adjustment": 0}
    r = await client.post("/api/smart-mask", json=body, headers=key)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["success"] is True and first["error"] is None and first["image_id"] and first["request_id"]
    mask = image_of(first["mask_base64"]).convert("L")
    assert mask.size == (120, 90)
    assert mask.getpixel((60, 45)) >= 200 and mask.getpixel((5, 5)) <= 50 and mask.getpixel((100, 80)) <= 50

    media_before = (await stored_counts(container))["media_objects"]
    again = {"image_id": first["image_id"], "points": [[60, 45]], "bbox": [34, 24, 86, 66]}
    r = await client.post("/api/smart-mask", json=again, headers=key)
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["image_id"] == first["image_id"] and second["request_id"] != first["request_id"]
    assert image_of(second["mask_base64"]).convert("L").getpixel((60, 45)) >= 200
    # The cached image was used as it is: only the new mask was stored.
    assert (await stored_counts(container))["media_objects"] == media_before + 1

    other = await new_key(client, container, "igor")
    r = await client.post("/api/smart-mask", json=again, headers=other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "media_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"image": "aW1n"},  # nothing says what to mask
        {"image": "aW1n", "image_id": "x", "auto_detect": True},
        {"bbox": [1, 2, 3, 4]},  # no image at all
        {"image": "aW1n", "bbox": [10, 10, 5, 20]},
        {"image": "aW1n", "points": [[1, -2]]},
        {"image": "aW1n", "auto_detect": True, "border_adjustment": 51},
        {"image": "aW1n", "auto_detect": True, "image_id": "\u0000"},
    ],
)
async def test_smart_mask_bad_bodies_are_400_and_store_nothing(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], body: dict[str, Any]
) -> None:
    before = await stored_counts(container)
    r = await client.post(
        "/api/smart-mask", content=json.dumps(body), headers={**key, "content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert await stored_counts(container) == before


async def test_an_unknown_image_id_is_404(client: httpx.AsyncClient, key: dict[str, str]) -> None:
    for image_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000001"):
        r = await client.post("/api/smart-mask", json={"image_id": image_id, "auto_detect": True}, headers=key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "media_not_found"


def hold_local_steps(container: Container, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Every `local` step waits until the returned event is set (set it when the test ends)."""
    local = container.providers["local"]
    original, release = local.run, asyncio.Event()

    async def held(request: Any) -> Any:
        await release.wait()
        return await original(request)

    monkeypatch.setattr(local, "run", held)
    return release


@pytest.mark.parametrize("settings_overrides", [{"artmancer_wait_sec": 0.5}], indirect=True)
async def test_a_request_that_does_not_end_in_time_is_504_and_can_be_cancelled(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local step is held until the test ends: the request cannot end within its wait.
    release = hold_local_steps(container, monkeypatch)
    try:
        await timed_out_then_cancelled(client, container, key)
    finally:
        release.set()


async def timed_out_then_cancelled(client: httpx.AsyncClient, container: Container, key: dict[str, str]) -> None:
    r = await client.post("/api/smart-mask", json={"image": b64(scene()), "auto_detect": True}, headers=key)
    assert r.status_code == 504, r.text
    error = r.json()["error"]
    assert error["code"] == "processing_timeout" and error["details"]["status"] in ("queued", "processing")
    request_id = error["details"]["request_id"]
    r = await client.post(f"/api/smart-mask/cancel/{request_id}", headers=key)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "success": True,
        "message": f"Smart mask request {request_id} marked for cancellation",
        "request_id": request_id,
    }
    r = await client.post(f"/api/smart-mask/cancel/{request_id}", headers=key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_finished"
    other = await new_key(client, container, "igor")
    for rid, headers in ((request_id, other), ("nope", key)):
        r = await client.post(f"/api/smart-mask/cancel/{rid}", headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
    # A generation's cancel does not name a smart mask request.
    r = await client.post(f"/api/generate/async/cancel/{request_id}", headers=key)
    assert r.status_code == 404


async def test_extract_object_keeps_white_and_makes_black_transparent(
    client: httpx.AsyncClient, key: dict[str, str]
) -> None:
    mask = box_mask((60, 45), (20, 15, 40, 30))  # half the photo's size: resized to it, (40, 30)-(80, 60)
    r = await client.post(
        "/api/image-utils/extract-object", json={"image": b64(scene()), "mask": b64(mask)}, headers=key
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["error"] is None
    assert base64.b64decode(body["extracted_image"]).startswith(b"\x89PNG")
    out = image_of(body["extracted_image"]).convert("RGBA")
    assert out.size == (120, 90)
    assert out.getpixel((60, 45)) == (220, 30, 30, 255)
    assert out.getpixel((5, 5))[3] == 0 and out.getpixel((110, 80))[3] == 0


async def test_extract_object_errors(client: httpx.AsyncClient, container: Container, key: dict[str, str]) -> None:
    before = await stored_counts(container)
    for body, status, code in (
        ({"image": b64(scene())}, 400, "validation_error"),
        ({"image": b64(scene()), "mask": "not base64!"}, 400, "input_base64_invalid"),
        ({"image": b64(scene()), "mask": b64(b"text")}, 415, "input_not_image"),
    ):
        r = await client.post("/api/image-utils/extract-object", json=body, headers=key)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    r = await client.post("/api/image-utils/extract-object", json={"image": b64(scene()), "mask": "x"}, headers={})
    assert r.status_code == 401
    assert await stored_counts(container) == before


def count_task_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-element counter of `TaskService.get` calls from now on."""
    from boothbridge.tasks.service import TaskService

    reads = [0]
    original_get = TaskService.get

    async def counted(self: TaskService, *args: Any, **kwargs: Any) -> Any:
        reads[0] += 1
        return await original_get(self, *args, **kwargs)

    monkeypatch.setattr(TaskService, "get", counted)
    return reads


# The wait is a booth's (`jobs.waiting`): the task is read as submitted (which checks it is the caller's), then once
# more when it ends or at the deadline, not every 0.25 s (as before: a 1.5 s wait read it 7 times).


@pytest.mark.parametrize("settings_overrides", [{"artmancer_wait_sec": 1.5}], indirect=True)
async def test_a_request_held_past_its_wait_is_read_twice(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_task_reads(monkeypatch)
    release = hold_local_steps(container, monkeypatch)
    try:
        r = await client.post("/api/smart-mask", json={"image": b64(scene()), "auto_detect": True}, headers=key)
        assert r.status_code == 504, r.text
        assert reads == [2]
    finally:
        release.set()


@pytest.mark.parametrize("settings_overrides", [{"artmancer_wait_sec": 60.0}], indirect=True)
async def test_a_request_released_while_it_waits_is_answered_on_its_ending(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_task_reads(monkeypatch)
    release = hold_local_steps(container, monkeypatch)
    asyncio.get_running_loop().call_later(1.0, release.set)
    try:
        r = await client.post("/api/smart-mask", json={"image": b64(scene()), "bbox": [40, 30, 80, 60]}, headers=key)
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True
        assert reads == [3]  # as submitted, on the ending, and for its output (`TaskService.output`)
    finally:
        release.set()
