"""Machine-client tasks on real PostgreSQL and S3 (moto), through `TaskService` as the task API builds it (issue 15):

- a task's input by base64 (plain and data: URI), by URL (a loopback HTTP server; a redirect followed) and by media
  id runs on the real worker path (`run_job_by_id`) with the `local` provider, and its output is read back;
- a named input (`local` `frame`'s `template_media_id`) becomes the step's setting;
- refused inputs store nothing: too large (413), not an image (415), a private address when private addresses are
  not allowed (403), another operator's media id (404), an input the operation does not take (422);
- ownership: another operator's key cannot get, list, read the outputs of or cancel the task (404 task_not_found).
"""

from __future__ import annotations

import base64
import io
import os
import uuid
from typing import Any

import pytest
from PIL import Image

from boothbridge.bootstrap import Container
from boothbridge.errors import AppError
from boothbridge.jobs.worker_loop import run_job_by_id
from boothbridge.tasks.model import InputRef, TaskSpec, TaskStep
from tests.support.booth import jpeg, png
from tests.support.tasks import Scripted, machine_client, media_count, scripted_server, task_service

PHOTO = jpeg(400, 300)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", {}))  # a test's own, by indirect parametrisation


def resize(**inputs: InputRef) -> TaskStep:
    return TaskStep(provider_id="local", operation_id="resize", settings={"width": 200}, inputs=inputs)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def run(c: Container, task_id: uuid.UUID) -> str:
    return str(await run_job_by_id(c.queue, c.runner, task_id, "test-worker"))


async def refused(c: Container, spec: TaskSpec, owner: str = "serg") -> AppError:
    service, client = task_service(c), await machine_client(c, owner)
    before = await media_count(c)
    with pytest.raises(AppError) as caught:
        await service.submit(client, spec)
    assert await media_count(c) == before  # nothing stored for a refused task
    return caught.value


async def test_base64_input_runs_and_the_output_is_read_back(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    spec = TaskSpec(steps=[resize()], source=InputRef(base64=b64(PHOTO)), clientRef={"avatar_id": "a-1"})
    view = await service.submit(client, spec)
    assert (view.status, view.phase, view.step_count, view.client_ref) == ("queued", "pending", 1, {"avatar_id": "a-1"})
    assert await run(container, view.id) == "succeeded"
    done = await service.get(client, view.id)
    assert (done.status, done.phase, done.progress, done.error) == ("succeeded", "done", 1.0, None)
    assert [(o.index, o.mime) for o in done.outputs] == [(0, "image/jpeg")]
    assert done.outputs[0].url.endswith(f"/api/v1/tasks/{view.id}/outputs/0")
    data, mime = await service.output(client, view.id, 0)
    assert mime == "image/jpeg" and Image.open(io.BytesIO(data)).size == (200, 150)
    with pytest.raises(AppError) as missing:
        await service.output(client, view.id, 1)
    assert (missing.value.status, missing.value.code) == (404, "output_not_found")


async def test_data_uri_and_media_id_inputs(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    uploaded = await service.upload(client, png(300, 300))
    assert uploaded.mime == "image/png" and uploaded.size_bytes > 0
    view = await service.submit(
        client, TaskSpec(steps=[resize()], source=InputRef(base64="data:image/jpeg;base64," + b64(PHOTO)))
    )
    assert await run(container, view.id) == "succeeded"
    by_id = await service.submit(client, TaskSpec(steps=[resize()], source=InputRef(media_id=uploaded.id)))
    assert await run(container, by_id.id) == "succeeded"
    data, mime = await service.output(client, by_id.id, 0)
    assert mime == "image/jpeg" and Image.open(io.BytesIO(data)).size == (200, 200)  # an opaque PNG: a JPEG


async def test_url_input_follows_a_redirect_and_a_named_input_becomes_the_setting(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    frame = Image.new("RGBA", (400, 300), (255, 0, 0, 255))
    frame.paste((0, 0, 0, 0), (100, 75, 300, 225))  # its transparent window
    buffer = io.BytesIO()
    frame.save(buffer, "PNG")
    files = {"photo.jpg": PHOTO, "frame.png": buffer.getvalue()}
    script = Scripted(files=files, redirects={"/old": "/files/photo.jpg"})
    async with scripted_server(script):
        step = TaskStep(
            provider_id="local",
            operation_id="frame",
            settings={},
            inputs={"template_media_id": InputRef(url=script.url("/files/frame.png"))},
        )
        view = await service.submit(client, TaskSpec(steps=[step], source=InputRef(url=script.url("/old"))))
    assert script.gets == ["/old", "/files/photo.jpg", "/files/frame.png"]  # the source first, then step inputs
    assert await run(container, view.id) == "succeeded", (await service.get(client, view.id)).error
    data, _ = await service.output(client, view.id, 0)
    assert Image.open(io.BytesIO(data)).size == (400, 300)


@pytest.mark.parametrize("settings_overrides", [{"max_upload_mb": 0.01}], indirect=True)
async def test_an_input_over_the_size_limit_is_413(container: Container) -> None:
    noise = io.BytesIO()
    Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3)).save(noise, "JPEG", quality=95)
    assert len(noise.getvalue()) > 0.01 * 1024 * 1024
    err = await refused(container, TaskSpec(steps=[resize()], source=InputRef(base64=b64(noise.getvalue()))))
    assert (err.status, err.code, err.details["input"]) == (413, "input_too_large", "source")


async def test_an_input_that_is_not_an_image_is_415(container: Container) -> None:
    err = await refused(container, TaskSpec(steps=[resize()], source=InputRef(base64=b64(b"%PDF-1.4 not a photo"))))
    assert (err.status, err.code) == (415, "input_not_image")


async def test_a_fetched_input_that_is_not_an_image_is_415_and_nothing_is_stored(container: Container) -> None:
    async with scripted_server(Scripted(files={"x.txt": b"hello"}, content_type="image/jpeg")) as script:
        err = await refused(container, TaskSpec(steps=[resize()], source=InputRef(url=script.url("/files/x.txt"))))
    assert (err.status, err.code) == (415, "input_not_image")


@pytest.mark.parametrize("settings_overrides", [{"task_fetch_allow_private": False}], indirect=True)
async def test_a_private_address_is_refused_before_any_request(container: Container) -> None:
    async with scripted_server(Scripted(files={"photo.jpg": PHOTO})) as script:
        err = await refused(container, TaskSpec(steps=[resize()], source=InputRef(url=script.url("/files/photo.jpg"))))
        assert script.gets == []  # never asked
    assert (err.status, err.code, err.details["address"]) == (403, "input_private_address", "127.0.0.1")


async def test_another_operators_media_id_is_404(container: Container) -> None:
    igor = await machine_client(container, "igor")
    theirs = await task_service(container).upload(igor, png(64, 64))
    err = await refused(container, TaskSpec(steps=[resize()], source=InputRef(media_id=theirs.id)))
    assert (err.status, err.code) == (404, "media_not_found")


async def test_invalid_steps_and_inputs_are_422(container: Container) -> None:
    photo = InputRef(base64=b64(PHOTO))
    cases: list[tuple[TaskStep, str]] = [
        (resize(reference_media_id=photo), "unknown_input"),
        (TaskStep(provider_id="local", operation_id="resize", settings={"width": "wide"}), "invalid_settings"),
        (TaskStep(provider_id="nobody", operation_id="resize"), "unknown_provider"),
    ]
    for step, code in cases:
        err = await refused(container, TaskSpec(steps=[step], source=photo))
        assert (err.status, err.code) == (422, code)


async def test_another_operators_key_cannot_see_read_or_cancel_the_task(container: Container) -> None:
    service = task_service(container)
    serg, igor = await machine_client(container, "serg"), await machine_client(container, "igor")
    view = await service.submit(serg, TaskSpec(steps=[resize()], source=InputRef(base64=b64(PHOTO))))
    attempts: list[Any] = [
        service.get(igor, view.id),
        service.cancel(igor, view.id),
        service.output(igor, view.id, 0),
    ]
    for attempt in attempts:
        with pytest.raises(AppError) as caught:
            await attempt
        assert (caught.value.status, caught.value.code) == (404, "task_not_found")
    assert await service.list(igor) == ([], 0)
    items, total = await service.list(serg)
    assert total == 1 and [t.id for t in items] == [view.id]
    cancelled = await service.cancel(serg, view.id)
    assert (cancelled.status, cancelled.phase, cancelled.error and cancelled.error.code) == (
        "cancelled",
        "error",
        "cancelled",
    )
