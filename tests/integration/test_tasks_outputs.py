"""What a task's job keeps, on the real runner, PostgreSQL and S3 (moto), with a provider registered for these tests
through PROVIDER_PLUGINS (`TaskTestProvider`, operations `many`, `record`, `draw`, `clip`):

- several outputs: the primary one and the further ones (`extra`) in order, each readable, with the result's JSON;
- a record result (`ProviderData`, a fine-tune) of a prompt-only task (no input image) is the task's result_data;
  as a step that is not the last it fails the task (`result_not_media`);
- a prompt-only step gets no input image (`request.source` None) and its image is the output;
- a video output passes by the image boundary as it is (`video/mp4`, the same bytes).
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import run_job_by_id
from boothbridge.providers.base import ImageInput, ProviderData, ProviderRequest, ProviderResult, in_memory
from boothbridge.settings import Settings
from boothbridge.tasks.model import InputRef, TaskSpec, TaskStep
from tests.fakes.sleepy import sleepy_catalog
from tests.support.booth import jpeg, png
from tests.support.tasks import machine_client, task_service

EXTRA = (png(32, 32), png(48, 48))
# An ISO-BMFF file as a video starts: a `ftyp` box of brand isom, then a free box and a (short) mdat box.
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08free" + b"\x00\x00\x00\x10mdat" + bytes(8)
OPERATIONS = ("many", "record", "draw", "clip")


class TaskTestProvider:
    """`many`: the input, plus two PNGs and {"seed": 42}; `record`: a fine-tune's record; `draw`: a PNG from
    nothing (it checks it was given no image); `clip`: a video (declared as octet-stream)."""

    id = "tasktest"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, request: ProviderRequest) -> ProviderResult | ProviderData:
        if request.operation_id == "many":
            image = await in_memory(request.photo())
            extra = tuple(ImageInput(data, "image/png") for data in EXTRA)
            return ProviderResult(image, cost=0.01, extra=extra, data={"seed": 42})
        if request.operation_id == "record":
            return ProviderData({"finetune_id": "ft-1"}, cost=1.5)
        if request.operation_id == "draw":
            assert request.source is None
            return ProviderResult(ImageInput(png(64, 64), "image/png"))
        return ProviderResult(ImageInput(MP4, "application/octet-stream"), cost=0.2)

    async def close(self) -> None:
        return None


def catalog(path: Path) -> Path:
    raw = json.loads(sleepy_catalog(path).read_text())
    limits = {"max_parallel_jobs": 2, "timeout_sec": 30, "allowed_mime": ["image/jpeg", "image/png"]}
    raw["providers"].append(
        {
            "id": "tasktest",
            "title": "Tasks (test)",
            "ingest": {**limits, "max_file_size_mb": 20},
            "operations": OPERATIONS,
        }
    )
    schema = {"type": "object", "properties": {"prompt": {"type": "string"}}, "additionalProperties": False}
    for name in OPERATIONS:
        raw["operations"][name] = {
            "title": name,
            "description": "test operation",
            "required_settings": [],
            "provider_overrides": {},
            "settings_schema": schema,
        }
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {
        "providers_config": catalog(tmp_path / "providers-tasks.json"),
        "provider_plugins": ["tests.fakes.sleepy:SleepyProvider", f"{__name__}:TaskTestProvider"],
    }


def step(operation: str) -> TaskStep:
    return TaskStep(provider_id="tasktest", operation_id=operation, settings={"prompt": "a cat"})


async def run(c: Container, task_id: uuid.UUID) -> str:
    return str(await run_job_by_id(c.queue, c.runner, task_id, "test-worker"))


async def test_several_outputs_and_their_data(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    photo = InputRef(base64=base64.b64encode(jpeg(200, 100)).decode())
    view = await service.submit(client, TaskSpec(steps=[step("many")], source=photo))
    assert await run(container, view.id) == "succeeded"
    done = await service.get(client, view.id)
    assert [(o.index, o.mime) for o in done.outputs] == [(0, "image/jpeg"), (1, "image/png"), (2, "image/png")]
    assert (done.result_data, done.phase) == ({"seed": 42}, "done")
    for index, data in enumerate(EXTRA, start=1):
        assert await service.output(client, view.id, index) == (data, "image/png")


async def test_a_record_result_of_a_prompt_only_task(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    view = await service.submit(client, TaskSpec(steps=[step("record")]))
    assert await run(container, view.id) == "succeeded"
    done = await service.get(client, view.id)
    assert (done.result_data, done.outputs, done.phase, done.cost) == ({"finetune_id": "ft-1"}, [], "done", 1.5)


async def test_a_record_before_the_last_step_fails_the_task(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    view = await service.submit(client, TaskSpec(steps=[step("record"), step("draw")]))
    assert await run(container, view.id) == "failed"
    failed = await service.get(client, view.id)
    assert (failed.phase, failed.error and failed.error.code) == ("error", "result_not_media")


async def test_a_prompt_only_step_makes_the_output(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    view = await service.submit(client, TaskSpec(steps=[step("draw")]))
    assert await run(container, view.id) == "succeeded", (await service.get(client, view.id)).error
    data, mime = await service.output(client, view.id, 0)
    assert mime == "image/png" and data.startswith(b"\x89PNG")


async def test_a_video_output_bypasses_the_image_boundary(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    view = await service.submit(client, TaskSpec(steps=[step("clip")], phaseNames={"clip": "processing_video"}))
    assert (await service.get(client, view.id)).phase == "pending"
    assert await run(container, view.id) == "succeeded"
    assert await service.output(client, view.id, 0) == (MP4, "video/mp4")
