"""ArtMancer's answers (seed 002) from the engine's `TaskView`: the status mapping, steps and progress, the stream's
event, the result body, and which tasks an id may name."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boothbridge.artmancer import results
from boothbridge.errors import AppError
from boothbridge.tasks.model import TaskError, TaskView

TASK_ID = uuid.UUID("11111111-2222-3333-4444-555555555555")
CREATED = datetime(2026, 11, 30, tzinfo=UTC)


def view(**changes: Any) -> TaskView:
    fields: dict[str, Any] = {
        "id": TASK_ID,
        "api": "artmancer",
        "client_ref": {"endpoint": "generate"},
        "status": "queued",
        "phase": "pending",
        "step_index": 0,
        "step_count": 2,
        "progress": 0.0,
        "outputs": [],
        "result_data": None,
        "error": None,
        "deliveries": [],
        "cost": None,
        "created_at": CREATED,
        "finished_at": None,
    }
    fields.update(changes)
    return TaskView(**fields)


@pytest.mark.parametrize(
    ("status", "step_index", "progress", "phase", "expected"),
    [
        ("queued", 0, 0.0, "pending", ("queued", 0, "Queued")),
        ("running", 0, 0.15, "processing_white_balance", ("processing", 1, "Balancing the colours...")),
        ("queued", 1, 0.5, "pending", ("processing", 2, "Queued")),
        ("running", 1, 0.65, "processing_resize", ("processing", 2, "Resizing...")),
        ("running", 1, 0.95, "uploading_image", ("processing", 2, "Saving the result...")),
        ("waiting_provider", 0, 0.25, "processing_combine_images", ("processing", 1, "Generating...")),
        ("succeeded", 1, 1.0, "done", ("done", 2, "Done")),
        ("cancelled", 1, 0.5, "error", ("cancelled", 2, "Cancelled")),
    ],
)
def test_status_step_and_message(
    status: str, step_index: int, progress: float, phase: str, expected: tuple[str, int, str]
) -> None:
    started = None if (status, step_index) == ("queued", 0) else CREATED  # a worker took it (first claim)
    v = view(status=status, step_index=step_index, progress=progress, phase=phase, started_at=started)
    body = results.status_body(v)
    assert (body["status"], body["current_step"], results.loading_message(v)) == expected
    assert body["total_steps"] == 2 and body["progress"] == progress and body["task_id"] == str(TASK_ID)
    event = results.stream_event(v)
    assert set(event) == {"task_id", "status", "progress", "current_step", "total_steps", "loading_message"}


def test_a_failed_task_says_its_error() -> None:
    v = view(status="failed", phase="error", error=TaskError(code="provider_failed", message="boom"))
    assert results.status_body(v)["status"] == "error"
    assert results.status_body(v)["error"] == "provider_failed: boom"
    with pytest.raises(AppError) as err:
        results.finished(v)
    assert (err.value.status, err.value.code) == (409, "task_failed")


def test_a_running_task_has_no_result_yet() -> None:
    with pytest.raises(AppError) as err:
        results.finished(view(status="running", phase="processing_resize"))
    assert (err.value.status, err.value.code, err.value.details) == (409, "result_not_ready", {"status": "processing"})


@pytest.mark.parametrize(("api", "endpoint"), [("aige", "generate"), ("tasks", None), ("artmancer", "smart-mask")])
def test_only_the_endpoints_own_tasks_are_found(api: str, endpoint: str | None) -> None:
    v = view(api=api, client_ref={"endpoint": endpoint} if endpoint else {})
    with pytest.raises(AppError) as err:
        results.checked(v, str(TASK_ID), ("generate",))
    assert (err.value.status, err.value.code) == (404, "task_not_found")
    assert results.checked(view(), str(TASK_ID), ("generate",)) is not None


def test_the_result_body() -> None:
    ref = {
        "endpoint": "generate",
        "task_type": "white-balance",
        "model_used": "local/white_balance",
        "parameters": {"seed": 42},
        "unused": ["seed"],
        "input_image_size": "64x48",
        "conditional_labels": ["unused"],
    }
    v = view(status="succeeded", progress=1.0, client_ref=ref, finished_at=CREATED + timedelta(seconds=1.5))
    body = results.generation_result(v, b"\x89PNG", "512x256")
    assert body["image"] == base64.b64encode(b"\x89PNG").decode()
    assert (body["status"], body["success"], body["generation_time"]) == ("done", True, 1.5)
    assert body["model_used"] == "local/white_balance" and body["parameters_used"] == {"seed": 42}
    assert body["request_id"] == str(TASK_ID)
    debug = body["debug_info"]
    assert (debug["input_image_size"], debug["output_image_size"]) == ("64x48", "512x256")
    assert (debug["conditional_images"], debug["conditional_labels"], debug["unused_parameters"]) == (
        1,
        ["unused"],
        ["seed"],
    )
