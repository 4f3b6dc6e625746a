"""AIGE's API (seeds 000/001) end to end through the emulator (real PostgreSQL, S3 on moto), with API keys made on
the operator API, the fal fake on its own port (polled: no public address) and a loopback writeUrl server.

- each avatar endpoint (avatar, background, overlay, upscaled, video, reframe, refine) answers 201/200 with
  `{aige_task_id, avatar_id}`, calls the fal model its operation names with the seed's fields, and its status,
  polled on `GET /task/{id}/status` while the job runs, goes pending -> processing_<model> -> uploading_image
  (uploading_video) -> done as the output is PUT to writeUrl;
- the overlay is the local composite: the person's pixels at the position on the background, cropped to the ratio;
- errors: 400 avatar_id_mismatch, 422 validation_error (a bad aspect ratio for each seed's value set), 404
  task_not_found (unknown, not a uuid, another operator's key), 401 without a key;
- the /api/v1 document: valid OpenAPI, each AIGE operation with its errors in the uniform body;
- fine-tune: start, 404 until done, the fal fine-tune id, FLUX Ultra with it: 404 until done, then fal's result
  shape with our public links (served); a failed fal request: status error, 404 task_failed.

Jobs are run by the test (`run_job_by_id`, the Lambda worker's path; the emulator's worker is off) and deliveries by
`TaskDeliveries.run_due`, so every status is observed where it is, not raced.
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from PIL import Image
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from boothbridge.bootstrap import Container
from boothbridge.http.openapi import ERROR_CODES_KEY
from boothbridge.jobs.worker_loop import run_job_by_id
from boothbridge.providers.fal.adapter import FalProvider
from local.fakes.fal_server import FakeFal
from tests.support.booth import jpeg, operator_token
from tests.support.live_server import serving

FAL_KEY = "aige-fal-key"
PHOTO = jpeg(64, 48)


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    fake = FakeFal((FAL_KEY,), rounds=15).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def settings_overrides(fal: FakeFal) -> dict[str, Any]:
    return {
        "fal_key": FAL_KEY,
        "fal_queue_url": fal.url,
        "fal_jwks_url": fal.jwks_url,
        "run_worker": False,
        "api_key_rate_limit": "100000/minute",  # the test polls the status as fast as it can
    }


@pytest.fixture
async def api(client: httpx.AsyncClient, container: Container) -> httpx.AsyncClient:
    provider = container.providers["fal"]
    assert isinstance(provider, FalProvider)
    provider.poll_interval_sec = 0.02
    return client


@dataclass
class WriteTarget:
    """A writeUrl server on loopback: each PUT is held until `release` is set (so `uploading_*` stays observable),
    then recorded and answered 200."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    puts: list[tuple[str, str, bytes]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method != "PUT":
            await Response(b"", 405)(scope, receive, send)
            return
        body = await request.body()
        await self.release.wait()
        self.puts.append((request.url.path, request.headers.get("content-type", ""), body))
        await Response(b"", 200)(scope, receive, send)


@pytest.fixture
async def target() -> AsyncIterator[WriteTarget]:
    script = WriteTarget()
    async with serving(script) as port:
        script.port = port
        yield script
        script.release.set()  # a PUT still held ends with the test


async def new_key(client: httpx.AsyncClient, container: Container, username: str) -> dict[str, str]:
    token = await operator_token(client, container.settings.credentials_path, username)
    r = await client.post(
        "/api/keys", json={"name": f"{username}'s AIGE"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def person_png() -> bytes:
    """A 20x40 transparent image with an opaque red body in its middle half."""
    img = Image.new("RGBA", (20, 40), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (5, 0, 15, 40))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def background_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (160, 90), (0, 255, 0)).save(buf, "PNG")
    return buf.getvalue()


async def status(api: httpx.AsyncClient, key: dict[str, str], task_id: str) -> str:
    r = await api.get(f"/api/v1/task/{task_id}/status", headers=key)
    assert r.status_code == 200, r.text
    assert r.json()["aige_task_id"] == task_id
    return str(r.json()["status"])


async def run_observed(api: httpx.AsyncClient, key: dict[str, str], c: Container, task_id: str) -> list[str]:
    """Run the task's job to its end (every step) while polling its status; the distinct statuses seen in order."""
    seen = [await status(api, key, task_id)]

    async def run() -> None:
        while await run_job_by_id(c.queue, c.runner, uuid.UUID(task_id), "aige-test") in ("queued", "handed_back"):
            pass

    job = asyncio.create_task(run())
    while True:
        finished = job.done()
        now = await status(api, key, task_id)
        if now != seen[-1]:
            seen.append(now)
        if finished:
            break
        await asyncio.sleep(0.01)
    await job
    return seen


async def delivered(api: httpx.AsyncClient, key: dict[str, str], target: WriteTarget, task_id: str) -> str:
    """Let the held writeUrl PUT through and wait for the task's status to leave uploading_*; that status."""
    target.release.set()
    for _ in range(2000):
        now = await status(api, key, task_id)
        if not now.startswith("uploading_"):
            return now
        await asyncio.sleep(0.01)
    return now


def fal_bodies(fal: FakeFal, model_part: str) -> list[dict[str, Any]]:
    return [call.body for call in fal.submits() if model_part in call.path]


async def test_avatar_runs_the_model_then_background_removal_and_delivers(
    api: httpx.AsyncClient, container: Container, fal: FakeFal, target: WriteTarget
) -> None:
    key = await new_key(api, container, "serg")
    body = {
        "prompt": "a knight",
        "source_images": [b64(PHOTO), f"data:image/jpeg;base64,{b64(jpeg(32, 32))}"],
        "aspect_ratio": "3:4",
        "avatar_id": "av-7",
        "writeUrl": target.url("/put/avatar.png"),
        "readUrl": "https://reader.example/avatar.png",
        "unknown_field": "ignored",
    }
    r = await api.post("/api/v1/avatar", json=body, headers=key)
    assert r.status_code == 201, r.text
    task_id = r.json()["aige_task_id"]
    assert r.json() == {"aige_task_id": task_id, "avatar_id": "av-7"}

    seen = await run_observed(api, key, container, task_id)
    # Between the steps step 1's output is stored (`uploading_image`) and the job queued for step 2 (`pending`):
    # either may be too brief to be seen.
    assert (seen[0], seen[-1]) == ("pending", "uploading_image")
    assert [s for s in seen if s.startswith("processing_")] == [
        "processing_avatar_model",
        "processing_background_removal",
    ]
    assert set(seen) == {"pending", "processing_avatar_model", "processing_background_removal", "uploading_image"}
    [avatar] = fal_bodies(fal, "kontext/max/multi")
    assert (avatar["prompt"], avatar["aspect_ratio"], len(avatar["image_urls"])) == ("a knight", "3:4", 2)
    assert len(fal_bodies(fal, "birefnet")) == 1

    assert await status(api, key, task_id) == "uploading_image"  # the PUT to writeUrl is held
    assert await delivered(api, key, target, task_id) == "done"
    [(path, _, data)] = target.puts
    assert path == "/put/avatar.png"
    assert Image.open(io.BytesIO(data)).mode == "RGBA"  # cut out: ready to overlay


async def test_avatar_without_an_id_gets_one(api: httpx.AsyncClient, container: Container) -> None:
    key = await new_key(api, container, "serg")
    r = await api.post("/api/v1/avatar", json={"prompt": "p", "source_images": [b64(PHOTO)]}, headers=key)
    assert r.status_code == 201, r.text
    assert r.json()["avatar_id"].startswith("avatar-") and len(r.json()["avatar_id"]) == 39


PUTS = [
    ("background", {"prompt": "a beach", "aspect_ratio": "16:9"}, "v1.1-ultra", "processing_background_model"),
    ("upscaled", {"image_url": b64(PHOTO), "scale": 2}, "esrgan", "processing_upscale"),
    ("video", {"prompt": "wave", "input_img": b64(PHOTO), "duration": "10"}, "kling", "processing_video"),
    ("reframe", {"image_url": b64(PHOTO), "aspect_ratio": "21:9"}, "reframe", "processing_reframe_model"),
    ("refine", {"prompt": "smile", "image_url": b64(PHOTO), "seed": 5}, "kontext/max", "processing_refine_model"),
]


@pytest.mark.parametrize(("endpoint", "body", "model_part", "phase"), PUTS, ids=[p[0] for p in PUTS])
async def test_each_put_endpoint_runs_its_model(
    api: httpx.AsyncClient,
    container: Container,
    fal: FakeFal,
    target: WriteTarget,
    endpoint: str,
    body: dict[str, Any],
    model_part: str,
    phase: str,
) -> None:
    key = await new_key(api, container, "serg")
    full = {**body, "avatar_id": "av-1", "writeUrl": target.url(f"/put/{endpoint}")}
    r = await api.put(f"/api/v1/avatar/av-1/{endpoint}", json=full, headers=key)
    assert r.status_code == 200, r.text
    task_id = r.json()["aige_task_id"]
    assert r.json()["avatar_id"] == "av-1"

    uploading = "uploading_video" if endpoint == "video" else "uploading_image"
    assert await run_observed(api, key, container, task_id) == ["pending", phase, uploading]
    [sent] = fal_bodies(fal, model_part)
    for name, value in body.items():
        if name not in ("image_url", "input_img"):
            assert sent[name] == value
    assert await status(api, key, task_id) == uploading
    assert await delivered(api, key, target, task_id) == "done"
    assert len(target.puts) == 1


async def test_overlay_puts_the_person_over_the_background(
    api: httpx.AsyncClient, container: Container, target: WriteTarget
) -> None:
    key = await new_key(api, container, "igor")
    body = {
        "prompt": "ignored",
        "aspect_ratio": "square_hd",  # seed 001's value set
        "params": {
            "person": f"data:image/png;base64,{b64(person_png())}",
            "background": b64(background_png()),
            "position": {"x": 70, "y": 5, "scale": 2},
        },
        "writeUrl": target.url("/put/overlay"),
    }
    r = await api.put("/api/v1/avatar/av-2/overlay", json=body, headers=key)
    assert r.status_code == 200, r.text
    task_id = r.json()["aige_task_id"]
    seen = await run_observed(api, key, container, task_id)
    assert seen[0] == "pending" and seen[-1] == "uploading_image"
    assert set(seen) <= {"pending", "processing_overlay_model", "uploading_image"}
    assert await status(api, key, task_id) == "uploading_image"
    assert await delivered(api, key, target, task_id) == "done"
    [(_, _, data)] = target.puts
    out = Image.open(io.BytesIO(data)).convert("RGB")
    assert out.size == (90, 90)  # 160x90 cropped to 1:1 (columns 35..124)
    # The body, scaled 2x, spans background columns 80..99 and rows 5..84: 45..64 after the crop.
    assert out.getpixel((55, 40)) == (255, 0, 0)
    assert out.getpixel((20, 40)) == (0, 255, 0)
    assert out.getpixel((55, 2)) == (0, 255, 0)


async def test_documented_errors(api: httpx.AsyncClient, container: Container) -> None:
    serg, igor = await new_key(api, container, "serg"), await new_key(api, container, "igor")
    r = await api.put("/api/v1/avatar/av-1/background", json={"prompt": "p", "avatar_id": "av-2"}, headers=serg)
    assert r.status_code == 400 and r.json()["error"]["code"] == "avatar_id_mismatch"
    assert r.json()["error"]["details"] == {"path_avatar_id": "av-1", "body_avatar_id": "av-2"}

    # Each seed's aspect ratios where they belong: fal's names only for the overlay.
    r = await api.put(
        "/api/v1/avatar/av-1/background", json={"prompt": "p", "aspect_ratio": "landscape_16_9"}, headers=serg
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["details"]["fields"][0]["field"] == "aspect_ratio"
    overlay = {"aspect_ratio": "2:3", "params": {"person": b64(PHOTO), "background": b64(PHOTO)}}
    r = await api.put("/api/v1/avatar/av-1/overlay", json=overlay, headers=serg)
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "aspect_ratio"
    r = await api.post("/api/v1/avatar", json={"source_images": [b64(PHOTO)]}, headers=serg)
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "prompt"
    r = await api.put("/api/v1/avatar/av-1/upscaled", json={"image_url": "ftp://host/a.png"}, headers=serg)
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "image_url"
    r = await api.put("/api/v1/avatar/av-1/upscaled", json={"image_url": b64(b"not an image")}, headers=serg)
    assert r.status_code == 415 and r.json()["error"]["details"]["field"] == "image_url"

    r = await api.put("/api/v1/avatar/av-1/background", json={"prompt": "a beach"}, headers=serg)
    assert r.status_code == 200
    task_id = r.json()["aige_task_id"]
    assert (await api.get(f"/api/v1/task/{task_id}/status", headers=serg)).status_code == 200
    for path, key in (
        (f"/api/v1/task/{task_id}/status", igor),  # another operator's key
        (f"/api/v1/task/{uuid.uuid4()}/status", serg),
        ("/api/v1/task/not-a-task/status", serg),
        (f"/api/v1/finetune/result/{task_id}", serg),  # not a fine-tune
    ):
        r = await api.get(path, headers=key)
        assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found", path
    r = await api.get(f"/api/v1/task/{task_id}/status")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


async def test_finetune_then_flux_ultra_with_it(api: httpx.AsyncClient, container: Container, fal: FakeFal) -> None:
    key = await new_key(api, container, "serg")
    r = await api.post("/api/v1/finetune", json={"data_url": "https://bucket.example/train.zip"}, headers=key)
    assert r.status_code == 200, r.text
    request_id = r.json()["finetune_id"]
    r = await api.get(f"/api/v1/finetune/result/{request_id}", headers=key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "result_not_ready"
    await run_observed(api, key, container, request_id)
    r = await api.get(f"/api/v1/finetune/result/{request_id}", headers=key)
    assert r.status_code == 200, r.text
    finetune_id = r.json()["finetune_id"]
    [trainer] = fal_bodies(fal, "flux-pro-trainer")
    assert (trainer["trigger_word"], trainer["iterations"], trainer["mode"]) == ("TOM4S", 300, "character")
    assert finetune_id.startswith("ft-")

    ultra = {"prompt": "TOM4S rides", "finetune_id": finetune_id, "finetune_strength": 0.7, "num_images": 2}
    r = await api.post("/api/v1/flux-ultra", json=ultra, headers=key)
    assert r.status_code == 200, r.text
    ultra_id = r.json()["request_id"]
    r = await api.get(f"/api/v1/flux-ultra/result/{ultra_id}", headers=key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "result_not_ready"
    assert (await api.get(f"/api/v1/finetune/result/{ultra_id}", headers=key)).status_code == 404
    await run_observed(api, key, container, ultra_id)
    [sent] = fal_bodies(fal, "ultra-finetuned")
    assert (sent["finetune_id"], sent["finetune_strength"], sent["num_images"]) == (finetune_id, 0.7, 2)

    r = await api.get(f"/api/v1/flux-ultra/result/{ultra_id}", headers=key)
    assert r.status_code == 200, r.text
    result = r.json()
    assert set(result) == {"images", "timings", "seed", "has_nsfw_concepts", "prompt"}
    assert len(result["images"]) == 2 and result["seed"] == 42
    base = container.settings.base_url
    for image in result["images"]:
        assert image["url"].startswith(f"{base}/public/media/")
        served = await api.get(image["url"].removeprefix(base))
        assert served.status_code == 200
        assert served.headers["content-type"] == image["content_type"] == "image/jpeg"
        assert Image.open(io.BytesIO(served.content)).size == (image["width"], image["height"])


async def test_a_failed_fine_tune_is_error_and_404(api: httpx.AsyncClient, container: Container, fal: FakeFal) -> None:
    fal.error_result = True
    key = await new_key(api, container, "serg")
    r = await api.post("/api/v1/finetune", json={"data_url": "https://bucket.example/train.zip"}, headers=key)
    request_id = r.json()["finetune_id"]
    seen = await run_observed(api, key, container, request_id)
    assert seen[-1] == "error"
    r = await api.get(f"/api/v1/finetune/result/{request_id}", headers=key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "task_failed"


async def test_the_document_describes_the_aige_endpoints(api: httpx.AsyncClient, container: Container) -> None:
    doc = (await api.get("/api/v1/openapi.json")).json()
    validate(doc)
    aige = {
        (method, path): operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if "aige" in operation.get("tags", [])
    }
    assert len(aige) == 12
    assert aige[("post", "/api/v1/avatar")]["responses"].keys() >= {"201", "401", "422"}
    assert (
        "avatar_id_mismatch" in aige[("put", "/api/v1/avatar/{avatar_id}/overlay")]["responses"]["400"][ERROR_CODES_KEY]
    )
    assert "task_not_found" in aige[("get", "/api/v1/task/{aige_task_id}/status")]["responses"]["404"][ERROR_CODES_KEY]
    for operation in aige.values():
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # A body that is not JSON at all is the same 422.
    key = await new_key(api, container, "serg")
    r = await api.post("/api/v1/finetune", content=b"{not json", headers={**key, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
