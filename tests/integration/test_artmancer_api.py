"""ArtMancer's generation API (seed 002, section 1) end to end through the emulator (real PostgreSQL, S3 on moto),
with API keys made on the operator API and the Gemini fake on its own port as the edit provider.

- white-balance: queued answer, status queued -> done with steps and progress, the result (base64 image at the
  requested width x height, parameters echoed, debug_info), the SSE stream's progress rising through both steps;
- removal and insertion: the Gemini fake receives [photo, mask | insertion guide, prompt];
- errors: 400 for each kind of bad body (range, missing input_image, bad task type, missing mask or reference,
  bad base64, NUL / lone surrogate, nothing stored), 413 for an image over the input cap, 401 without or with a bad
  key, 404 for an unknown id or another operator's task, 409 result_not_ready / task_failed, cancel and 409
  job_finished, 503 provider_unavailable with no Gemini key; the /api/v1 document lists the routes.

Jobs are run by the test (`run_job_by_id`, the Lambda worker's path; the emulator's worker is off), so every status
is observed where it is, not raced.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import run_job_by_id
from local.app import Emulator
from local.fakes.gemini_server import FakeGemini, gemini_server
from tests.support.booth import jpeg, operator_token
from tests.support.live_server import serving
from tests.support.storage import stored_counts

PLUGIN = "boothbridge.providers.gemini.adapter:GeminiProvider"
PHOTO = jpeg(64, 48, (120, 100, 90))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_of(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return png_of(mask)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, gemini: FakeGemini) -> dict[str, Any]:
    values: dict[str, Any] = {
        "gemini_api_key": "key-a",
        "gemini_base_url": gemini.url,
        "provider_plugins": [PLUGIN],
        "run_worker": False,
        "api_key_rate_limit": "100000/minute",
        "max_upload_mb": 1,
    }
    values.update(getattr(request, "param", {}))
    return values


async def new_key(client: httpx.AsyncClient, c: Container, username: str = "serg") -> dict[str, str]:
    token = await operator_token(client, c.settings.credentials_path, username)
    r = await client.post("/api/keys", json={"name": "ArtMancer"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


@pytest.fixture
async def key(client: httpx.AsyncClient, container: Container) -> dict[str, str]:
    return await new_key(client, container)


async def submit(client: httpx.AsyncClient, key: dict[str, str], path: str = "/api/generate", **body: Any) -> str:
    payload = {"input_image": b64(PHOTO), "task_type": "white-balance", **body}
    r = await client.post(path, json=payload, headers=key)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "queued" and answer["message"].startswith("Generation job submitted successfully")
    return str(answer["task_id"])


async def status(client: httpx.AsyncClient, key: dict[str, str], task_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/generate/status/{task_id}", headers=key)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def run(c: Container, task_id: str) -> None:
    """Run the task's job to its end, every step."""
    while await run_job_by_id(c.queue, c.runner, uuid.UUID(task_id), "artmancer-test") in ("queued", "handed_back"):
        pass


# ---- success ----------------------------------------------------------------------------------------------------


async def test_white_balance_with_a_size_runs_two_steps_and_answers_the_result(
    client: httpx.AsyncClient, container: Container, key: dict[str, str]
) -> None:
    task_id = await submit(client, key, width=320, height=256, seed=42, angle="wide-angle", guidance_scale=2.5)
    assert await status(client, key, task_id) == {
        "task_id": task_id,
        "status": "queued",
        "progress": 0.0,
        "current_step": 0,
        "total_steps": 2,
        "error": None,
    }
    r = await client.get(f"/api/generate/result/{task_id}", headers=key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "result_not_ready"
    await run(container, task_id)
    done = await status(client, key, task_id)
    assert (done["status"], done["progress"], done["current_step"], done["total_steps"]) == ("done", 1.0, 2, 2)

    r = await client.get(f"/api/generate/result/{task_id}", headers=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["task_id"], body["status"], body["success"], body["request_id"]) == (task_id, "done", True, task_id)
    with Image.open(io.BytesIO(base64.b64decode(body["image"]))) as img:
        assert img.size == (320, 256)
    assert body["model_used"] == "local/white_balance" and body["generation_time"] >= 0
    params = body["parameters_used"]
    assert (params["seed"], params["angle"], params["guidance_scale"], params["num_inference_steps"]) == (
        42,
        "wide-angle",
        2.5,
        10,
    )
    debug = body["debug_info"]
    assert (debug["input_image_size"], debug["output_image_size"]) == ("64x48", "320x256")
    assert debug["conditional_images"] == 0 and "seed" in debug["unused_parameters"]


async def test_async_is_the_same_and_cancel_marks_it_cancelled(
    client: httpx.AsyncClient, container: Container, key: dict[str, str]
) -> None:
    task_id = await submit(client, key, "/api/generate/async")
    r = await client.post(f"/api/generate/async/cancel/{task_id}", headers=key)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "success": True,
        "message": f"Async generation task {task_id} marked for cancellation",
        "task_id": task_id,
    }
    cancelled = await status(client, key, task_id)
    assert (cancelled["status"], cancelled["error"]) == ("cancelled", cancelled["error"])
    assert cancelled["error"] is not None
    r = await client.get(f"/api/generate/result/{task_id}", headers=key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "task_failed"
    r = await client.post(f"/api/generate/async/cancel/{task_id}", headers=key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_finished"


async def test_removal_sends_the_photo_and_the_mask_to_the_edit_provider(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], gemini: FakeGemini
) -> None:
    mask = box_mask((64, 48), (10, 10, 30, 30))
    task_id = await submit(
        client, key, task_type="removal", conditional_images=[b64(mask)], prompt="the cup", negative_prompt="blur"
    )
    await run(container, task_id)
    assert (await status(client, key, task_id))["status"] == "done"
    [call] = gemini.generate_calls()
    assert [p.kind for p in call.parts] == ["inline", "inline", "text"]
    assert call.parts[0].data == PHOTO
    with Image.open(io.BytesIO(call.parts[1].data)) as sent, Image.open(io.BytesIO(mask)) as given:
        assert sent.size == given.size and sent.convert("L").tobytes() == given.tobytes()  # the mask's pixels
    assert "white area marks an object" in call.parts[2].text and "Request: the cup" in call.parts[2].text
    assert "Avoid: blur" in call.parts[2].text
    r = await client.get(f"/api/generate/result/{task_id}", headers=key)
    assert r.status_code == 200
    body = r.json()
    assert body["model_used"] == "gemini/combine_images"
    assert body["debug_info"]["conditional_labels"] == ["mask"]


async def test_insertion_sends_the_photo_and_a_guide_with_the_reference_in_the_mask(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], gemini: FakeGemini
) -> None:
    mask = box_mask((64, 48), (40, 8, 60, 28))
    reference = png_of(Image.new("RGB", (30, 30), (0, 0, 255)))
    task_id = await submit(
        client, key, task_type="insertion", conditional_images=[b64(mask)], reference_image=b64(reference)
    )
    await run(container, task_id)
    [call] = gemini.generate_calls()
    assert call.parts[0].data == PHOTO
    with Image.open(io.BytesIO(call.parts[1].data)) as sent:
        guide = sent.convert("RGB")
    assert guide.size == (64, 48)
    assert guide.getpixel((50, 18)) == (0, 0, 255) and guide.getpixel((10, 10)) == (0, 0, 0)
    assert "shows an object at the place and size" in call.parts[2].text


# ---- the event stream -------------------------------------------------------------------------------------------


@pytest.fixture
async def live(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator behind a real HTTP server (httpx's in-process transport buffers whole responses)."""
    async with serving(emulator) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


async def test_the_stream_shows_progress_rising_through_the_steps(
    live: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await new_key(live, container)
    task_id = await submit(live, key, width=300, height=300)
    # Each local step waits for its gate, opened once the stream has shown that step running: every step is seen.
    local = container.providers["local"]
    original = local.run
    gates = {1: asyncio.Event(), 2: asyncio.Event()}
    ran: list[str] = []

    async def gated(request: Any) -> Any:
        ran.append(request.operation_id)
        await gates[len(ran)].wait()
        return await original(request)

    monkeypatch.setattr(local, "run", gated)
    events: list[dict[str, Any]] = []
    runner: asyncio.Task[None] | None = None
    async with live.stream("GET", f"/api/generate/stream/{task_id}", headers=key) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert (r.headers["cache-control"], r.headers["connection"]) == ("no-cache", "keep-alive")
        buffer = ""
        async for chunk in r.aiter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                data = [line[len("data: ") :] for line in block.split("\n") if line.startswith("data: ")]
                if not data:
                    continue
                event = json.loads(data[0])
                events.append(event)
                if runner is None:  # the first event is certainly "queued": only now may the job start
                    runner = asyncio.create_task(run(container, task_id))
                if event["status"] == "processing" and event["current_step"] in gates:
                    gates[event["current_step"]].set()
    assert runner is not None
    await runner
    assert ran == ["white_balance", "resize"]
    assert set(events[0]) == {"task_id", "status", "progress", "current_step", "total_steps", "loading_message"}
    assert (events[0]["status"], events[0]["progress"], events[0]["current_step"]) == ("queued", 0.0, 0)
    assert (events[-1]["status"], events[-1]["progress"], events[-1]["loading_message"]) == ("done", 1.0, "Done")
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
    running = [(e["current_step"], e["progress"], e["loading_message"]) for e in events if e["status"] == "processing"]
    assert (1, 0.15, "Balancing the colours...") in running and (2, 0.65, "Resizing...") in running
    assert all(e["total_steps"] == 2 and e["task_id"] == task_id for e in events)


# ---- errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"width": 100}, "validation_error"),
        ({"num_inference_steps": 101}, "validation_error"),
        ({"true_cfg_scale": 16}, "validation_error"),
        ({"input_quality": "best"}, "validation_error"),
        ({"task_type": "style"}, "validation_error"),
        ({"input_image": None}, "validation_error"),
        ({"prompt": "a\x00b"}, "validation_error"),
        ({"negative_prompt": "\ud800"}, "validation_error"),
        ({"background_preset": "x\x00"}, "validation_error"),
        ({"task_type": "removal"}, "mask_required"),
        ({"task_type": "insertion", "conditional_images": ["AAAA"]}, "reference_required"),
        ({"input_image": "not base64!"}, "input_base64_invalid"),
        ({"input_image": "a\x00b"}, "input_base64_invalid"),
        ({"input_image": "\ud800abc"}, "validation_error"),
        ({"input_image": b64(b"plain text, not an image")}, "input_not_image"),
    ],
)
async def test_a_bad_body_is_a_4xx_and_stores_nothing(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], body: dict[str, Any], code: str
) -> None:
    before = await stored_counts(container)
    payload = {"input_image": b64(PHOTO), "task_type": "white-balance", **body}
    payload = {name: value for name, value in payload.items() if value is not None}
    r = await client.post(
        "/api/generate", content=json.dumps(payload), headers={**key, "content-type": "application/json"}
    )
    assert r.status_code in (400, 415), r.text
    assert r.json()["error"]["code"] == code
    assert await stored_counts(container) == before


async def test_an_image_over_the_input_cap_is_input_too_large(
    client: httpx.AsyncClient, container: Container, key: dict[str, str]
) -> None:
    before = await stored_counts(container)
    r = await client.post(
        "/api/generate", json={"input_image": "A" * 2_000_000, "task_type": "white-balance"}, headers=key
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "input_too_large"
    assert r.json()["error"]["details"]["field"] == "input_image"
    assert await stored_counts(container) == before


async def test_keys_and_ownership(client: httpx.AsyncClient, container: Container, key: dict[str, str]) -> None:
    for headers in ({}, {"Authorization": "Bearer bbk_not-a-key"}):
        r = await client.post(
            "/api/generate", json={"input_image": b64(PHOTO), "task_type": "removal"}, headers=headers
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    task_id = await submit(client, key)
    other = await new_key(client, container, "igor")
    for path in ("status", "result", "stream"):
        for task, headers in ((task_id, other), (str(uuid.uuid4()), key), ("not-a-uuid", key)):
            r = await client.get(f"/api/generate/{path}/{task}", headers=headers)
            assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found", (path, task)
    r = await client.post(f"/api/generate/async/cancel/{task_id}", headers=other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "task_not_found"
    assert (await status(client, key, task_id))["status"] == "queued"  # the other operator's cancel did nothing


async def test_a_failed_edit_says_error_and_has_no_result(
    client: httpx.AsyncClient, container: Container, key: dict[str, str], gemini: FakeGemini
) -> None:
    from local.fakes.gemini_replies import error_reply

    gemini.script(None, error_reply(400, "bad request"))
    task_id = await submit(client, key, task_type="removal", conditional_images=[b64(box_mask((64, 48), (1, 1, 9, 9)))])
    await run(container, task_id)
    failed = await status(client, key, task_id)
    assert failed["status"] == "error" and failed["error"]
    r = await client.get(f"/api/generate/result/{task_id}", headers=key)
    assert r.status_code == 409 and r.json()["error"]["code"] == "task_failed"


@pytest.mark.parametrize("settings_overrides", [{"gemini_api_key": ""}], indirect=True)
async def test_no_key_for_the_edit_provider_is_503_provider_unavailable(
    client: httpx.AsyncClient, container: Container, key: dict[str, str]
) -> None:
    before = await stored_counts(container)
    body = {
        "input_image": b64(PHOTO),
        "task_type": "removal",
        "conditional_images": [b64(box_mask((8, 8), (0, 0, 4, 4)))],
    }
    r = await client.post("/api/generate", json=body, headers=key)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "provider_unavailable"
    assert await stored_counts(container) == before
    assert (
        await client.post("/api/generate", json={**body, "task_type": "white-balance"}, headers=key)
    ).status_code == 200


async def test_the_document_lists_the_routes(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/generate",
        "/api/generate/async",
        "/api/generate/status/{task_id}",
        "/api/generate/result/{task_id}",
        "/api/generate/stream/{task_id}",
        "/api/generate/async/cancel/{task_id}",
        "/api/smart-mask",
        "/api/smart-mask/cancel/{request_id}",
        "/api/image-utils/extract-object",
    ):
        assert path in paths, path
    assert "400" in paths["/api/generate"]["post"]["responses"]
    assert "503" in paths["/api/generate"]["post"]["responses"]
