"""AIGE's answers about a task from the engine's `TaskView`: which tasks an id may name, the status body, the
fine-tune's id, FLUX Ultra's fal-shaped result (images published through the given callables)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image

from boothbridge.aige import results
from boothbridge.errors import AppError
from boothbridge.tasks.model import TaskError, TaskOutput, TaskView

TASK_ID = uuid.UUID("11111111-2222-3333-4444-555555555555")


def view(**changes: Any) -> TaskView:
    fields: dict[str, Any] = {
        "id": TASK_ID,
        "api": "aige",
        "client_ref": {"endpoint": "flux-ultra"},
        "status": "succeeded",
        "phase": "done",
        "step_index": 0,
        "step_count": 1,
        "progress": 1.0,
        "outputs": [],
        "result_data": None,
        "error": None,
        "deliveries": [],
        "cost": 0.07,
        "created_at": datetime(2026, 11, 30, tzinfo=UTC),
        "finished_at": None,
    }
    fields.update(changes)
    return TaskView(**fields)


def output(index: int) -> TaskOutput:
    media_id = uuid.UUID(int=index + 1)
    return TaskOutput(index=index, media_id=media_id, mime="image/jpeg", url=f"/api/v1/tasks/x/outputs/{index}")


def jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, "JPEG")
    return buf.getvalue()


def test_checked_refuses_what_is_not_this_endpoints_aige_task() -> None:
    assert results.checked(view(), "t", "flux-ultra").id == TASK_ID
    assert results.checked(view(), "t").id == TASK_ID
    for candidate, endpoint in ((None, None), (view(api="tasks"), None), (view(), "finetune")):
        with pytest.raises(AppError) as caught:
            results.checked(candidate, "t-1", endpoint)
        assert (caught.value.status, caught.value.code) == (404, "task_not_found")
        assert caught.value.details == {"aige_task_id": "t-1"}


def test_status_body_is_the_aige_phase() -> None:
    body = results.status_body(view(status="running", phase="processing_upscale"))
    assert body == {"aige_task_id": str(TASK_ID), "status": "processing_upscale"}


def test_finetune_result_once_succeeded() -> None:
    done = view(client_ref={"endpoint": "finetune"}, result_data={"finetune_id": "ft-abc", "extra": 1})
    assert results.finetune_result(done) == {"finetune_id": "ft-abc"}


@pytest.mark.parametrize(
    ("status", "phase", "code"),
    [
        ("queued", "pending", "result_not_ready"),
        ("running", "processing_finetune", "result_not_ready"),
        ("waiting_provider", "processing_finetune", "result_not_ready"),
        ("failed", "error", "task_failed"),
        ("cancelled", "error", "task_failed"),
    ],
)
def test_finetune_result_is_404_until_done(status: str, phase: str, code: str) -> None:
    error = TaskError(code="provider_failed", message="fal said no") if status == "failed" else None
    with pytest.raises(AppError) as caught:
        results.finetune_result(view(status=status, phase=phase, error=error))
    assert (caught.value.status, caught.value.code) == (404, code)
    assert caught.value.details["status"] == phase
    if status == "failed":
        assert caught.value.details["error"] == {"code": "provider_failed", "message": "fal said no"}


def test_finetune_without_an_id_is_failed() -> None:
    with pytest.raises(AppError) as caught:
        results.finetune_result(view(result_data={}))
    assert caught.value.code == "task_failed"


async def test_ultra_result_is_fal_shaped_with_our_links() -> None:
    sizes = {0: (64, 48), 1: (30, 40)}
    published: list[tuple[int, str]] = []

    async def read(item: TaskOutput) -> tuple[bytes, str]:
        return jpeg(sizes[item.index]), item.mime

    async def publish(data: bytes, mime: str) -> str:
        published.append((len(data), mime))
        return f"https://bb.example/public/media/{len(published)}"

    record = {"timings": {"inference": 1.5}, "seed": 42, "has_nsfw_concepts": [False, True], "prompt": "TOM4S"}
    body = await results.ultra_result(view(outputs=[output(1), output(0)], result_data=record), read, publish)
    assert body == {
        "images": [
            {"url": "https://bb.example/public/media/1", "width": 64, "height": 48, "content_type": "image/jpeg"},
            {"url": "https://bb.example/public/media/2", "width": 30, "height": 40, "content_type": "image/jpeg"},
        ],
        "timings": {"inference": 1.5},
        "seed": 42,
        "has_nsfw_concepts": [False, True],
        "prompt": "TOM4S",
    }
    assert [mime for _, mime in published] == ["image/jpeg", "image/jpeg"]


async def test_ultra_result_without_fal_fields() -> None:
    async def read(item: TaskOutput) -> tuple[bytes, str]:
        return jpeg((8, 8)), item.mime

    async def publish(data: bytes, mime: str) -> str:
        return "https://bb.example/p"

    body = await results.ultra_result(view(outputs=[output(0)]), read, publish)
    assert body["timings"] == {} and body["seed"] is None and body["prompt"] is None
    assert body["has_nsfw_concepts"] == [False]


async def test_ultra_result_is_404_while_running() -> None:
    async def never(*_: Any) -> Any:
        raise AssertionError("nothing is read or published before the task is done")

    with pytest.raises(AppError) as caught:
        await results.ultra_result(view(status="running", phase="processing_background_model"), never, never)
    assert (caught.value.status, caught.value.code) == (404, "result_not_ready")


async def test_ultra_result_leaves_out_fields_of_another_type() -> None:
    async def read(item: TaskOutput) -> tuple[bytes, str]:
        return jpeg((8, 8)), item.mime

    async def publish(data: bytes, mime: str) -> str:
        return "https://bb.example/p"

    record = {"timings": [1], "seed": "42", "has_nsfw_concepts": ["no"], "prompt": 7}
    body = await results.ultra_result(view(outputs=[output(0)], result_data=record), read, publish)
    assert (body["timings"], body["seed"], body["has_nsfw_concepts"], body["prompt"]) == ({}, None, [False], None)
