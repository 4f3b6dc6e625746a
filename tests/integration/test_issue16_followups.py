"""Follow-ups of issue 16's review, through the emulator (real PostgreSQL, S3 on moto):

- a smart-mask whose point lies outside the image, or whose box misses it, is 400 `invalid_settings` naming the
  field, and nothing is stored: no task, no media (with `image` and with `image_id`);
- a number sent as text (or a boolean) in an ArtMancer body is 400 `validation_error` naming the field, nothing
  stored;
- a generation cancelled while still queued says `current_step` 0 in its status and its stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from boothbridge.bootstrap import Container
from local.app import Emulator
from tests.integration.test_artmancer_api import b64, new_key
from tests.integration.test_issue16_review import scene
from tests.support.live_server import serving
from tests.support.storage import stored_counts


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    values: dict[str, Any] = {"api_key_rate_limit": "100000/minute", "artmancer_wait_sec": 20.0}
    values.update(getattr(request, "param", {}))
    return values


@pytest.fixture
async def key(client: httpx.AsyncClient, container: Container) -> dict[str, str]:
    return await new_key(client, container)


OUTSIDE = [
    ({"points": [[120, 45]]}, ["points.0"]),
    ({"points": [[60, 45]], "background_points": [[5, 90.5]]}, ["background_points.0"]),
    ({"bbox": [130, 0, 200, 80]}, ["bbox"]),
    ({"bbox": [10, 10, 10.5, 10.5]}, ["bbox"]),
    ({"bbox": [119.5, 0, 200, 90], "points": [[60, 45], [60, 90]]}, ["bbox", "points.1"]),
]


@pytest.mark.parametrize(("where", "fields"), OUTSIDE)
async def test_a_smart_mask_outside_the_image_is_400_and_stores_nothing(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], where: dict[str, Any], fields: list[str]
) -> None:
    before = await stored_counts(container)
    r = await client.post("/api/smart-mask", json={"image": b64(scene()), **where}, headers=key)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_settings" and "120x90" in error["message"]
    assert [f["field"] for f in error["details"]["fields"]] == fields
    assert await stored_counts(container) == before


async def test_a_smart_mask_outside_a_cached_image_is_400_and_stores_nothing(
    client: httpx.AsyncClient, container: Container, key: dict[str, str]
) -> None:
    r = await client.post("/api/smart-mask", json={"image": b64(scene()), "bbox": [34, 24, 86, 66]}, headers=key)
    assert r.status_code == 200, r.text
    image_id = r.json()["image_id"]
    before = await stored_counts(container)
    for where, fields in OUTSIDE:
        r = await client.post("/api/smart-mask", json={"image_id": image_id, **where}, headers=key)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_settings" and "120x90" in error["message"]
        assert [f["field"] for f in error["details"]["fields"]] == fields
    assert await stored_counts(container) == before
    # Inside the image, the same cached image still answers (the check passed, the task ran).
    r = await client.post("/api/smart-mask", json={"image_id": image_id, "points": [[119.5, 89.5]]}, headers=key)
    assert r.status_code == 200, r.text
    # Another operator's image id is still 404 (not judged by an image the caller cannot see).
    other = await new_key(client, container, "igor")
    r = await client.post("/api/smart-mask", json={"image_id": image_id, "points": [[500, 5]]}, headers=other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "media_not_found", r.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/smart-mask", {"bbox": ["10", 20, 30, 40]}, "bbox.0"),
        ("/api/smart-mask", {"points": [[1, "2"]]}, "points.0.1"),
        ("/api/smart-mask", {"auto_detect": True, "border_adjustment": "5"}, "border_adjustment"),
        ("/api/generate", {"task_type": "white-balance", "width": "512"}, "width"),
        ("/api/generate", {"task_type": "white-balance", "guidance_scale": True}, "guidance_scale"),
        ("/api/image-utils/extract-object", {"mask": "aW1n", "blur_radius": "3"}, "blur_radius"),
    ],
)
async def test_a_number_as_text_is_400_naming_the_field(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    before = await stored_counts(container)
    image = {"input_image": b64(scene())} if path == "/api/generate" else {"image": b64(scene())}
    r = await client.post(path, json={**image, **body}, headers=key)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["details"]["fields"]] == [field]
    assert await stored_counts(container) == before


@pytest.fixture
async def live(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator behind a real HTTP server (httpx's in-process transport buffers whole responses)."""
    async with serving(emulator) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


@pytest.mark.parametrize("settings_overrides", [{"run_worker": False}], indirect=True)
async def test_a_generation_cancelled_while_queued_is_at_step_0(live: httpx.AsyncClient, container: Container) -> None:
    key = await new_key(live, container)
    body = {"input_image": b64(scene()), "task_type": "white-balance", "width": 300, "height": 300}
    r = await live.post("/api/generate/async", json=body, headers=key)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    r = await live.post(f"/api/generate/async/cancel/{task_id}", headers=key)
    assert r.status_code == 200, r.text
    r = await live.get(f"/api/generate/status/{task_id}", headers=key)
    assert r.status_code == 200, r.text
    status = r.json()
    assert (status["status"], status["current_step"], status["total_steps"]) == ("cancelled", 0, 2)
    r = await live.get(f"/api/generate/stream/{task_id}", headers=key)
    events = [json.loads(line[len("data: ") :]) for line in r.text.split("\n") if line.startswith("data: ")]
    assert [(e["status"], e["current_step"], e["loading_message"]) for e in events] == [("cancelled", 0, "Cancelled")]
