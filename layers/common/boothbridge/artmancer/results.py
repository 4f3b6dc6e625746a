"""ArtMancer's answers about a task (seed 002), from the task engine's `TaskView`. Pure: views (and result bytes)
in, the seed's bodies out.

Status (seed 1.3: queued, processing, done, error, cancelled) from the job's: `queued` before the first step
starts, `processing` from then on (also between steps and before a retry), `done` (succeeded), `error` (failed),
`cancelled`. `total_steps` is the task's pipeline steps; `current_step` 0 while queued, the step being worked on
(1-based) while processing, the step it stopped in once failed or cancelled (0 when it ended before any worker
took it: cancelled while still queued), `total_steps` once done. `progress`
is the engine's (0..1: each step an equal share, `jobs.progress`), 1.0 once done.

Which task an id may name: an ArtMancer task of the caller's operator (`TaskService.get` scopes by operator) made
by the endpoint family asking (`client_ref["endpoint"]`); anything else is 404 `task_not_found`, exactly like an
id that does not exist. A result asked for early is 409 `result_not_ready` (`details.status`); one of a task that
failed or was cancelled is 409 `task_failed` (`details.status`, `details.error`).
"""

from __future__ import annotations

import base64
from typing import Any

from boothbridge.artmancer.mapping import API
from boothbridge.errors import AppError
from boothbridge.tasks.model import TaskView, task_not_found

TERMINAL = ("succeeded", "failed", "cancelled")
_STATUS = {"succeeded": "done", "failed": "error", "cancelled": "cancelled"}
# What the stream's `loading_message` says while an operation runs (by the engine's phase `processing_<op>`).
_RUNNING = {
    "white_balance": "Balancing the colours...",
    "combine_images": "Generating...",
    "resize": "Resizing...",
    "smart_mask": "Finding the object...",
    "extract_object": "Extracting the object...",
}


def checked(view: TaskView | None, task_id: str, endpoints: tuple[str, ...]) -> TaskView:
    """`view` when it is an ArtMancer task of one of `endpoints`; else 404 `task_not_found`."""
    if view is None or view.api != API or view.client_ref.get("endpoint") not in endpoints:
        raise task_not_found(task_id)
    return view


def is_terminal(view: TaskView) -> bool:
    return view.status in TERMINAL


def status_of(view: TaskView) -> str:
    if view.status in _STATUS:
        return _STATUS[view.status]
    if view.status == "queued" and view.step_index == 0 and view.progress == 0:
        return "queued"
    return "processing"


def current_step(view: TaskView) -> int:
    """The step the task is at, 1-based; 0 while queued, or once it ended without ever running (`started_at`)."""
    status = status_of(view)
    if status == "done":
        return view.step_count
    if status == "queued" or (status in ("error", "cancelled") and view.started_at is None):
        return 0
    return min(view.step_index + 1, view.step_count)


def error_text(view: TaskView) -> str | None:
    """The task's error as ArtMancer gives it (one string: `code: message`); None unless it failed or was
    cancelled."""
    if view.status not in ("failed", "cancelled"):
        return None
    if view.error is None:
        return "cancelled" if view.status == "cancelled" else "failed"
    return f"{view.error.code}: {view.error.message}"


def status_body(view: TaskView) -> dict[str, Any]:
    """`GET /api/generate/status/{task_id}`."""
    return {
        "task_id": str(view.id),
        "status": status_of(view),
        "progress": 1.0 if view.status == "succeeded" else view.progress,
        "current_step": current_step(view),
        "total_steps": view.step_count,
        "error": error_text(view),
    }


def loading_message(view: TaskView) -> str:
    status = status_of(view)
    if status == "done":
        return "Done"
    if status in ("error", "cancelled"):
        return "Cancelled" if status == "cancelled" else f"Failed: {error_text(view)}"
    if status == "queued" or view.phase in ("queued", "pending"):
        return "Queued"
    if view.phase.startswith("uploading_"):
        return "Saving the result..."
    operation = view.phase.removeprefix("processing_")
    return _RUNNING.get(operation, "Processing...")


def stream_event(view: TaskView) -> dict[str, Any]:
    """One `data:` of `GET /api/generate/stream/{task_id}` (seed 1.5)."""
    body = status_body(view)
    return {
        "task_id": body["task_id"],
        "status": body["status"],
        "progress": body["progress"],
        "current_step": body["current_step"],
        "total_steps": body["total_steps"],
        "loading_message": loading_message(view),
    }


def finished(view: TaskView) -> None:
    """Raise unless the task succeeded: 409 `task_failed` (failed or cancelled), 409 `result_not_ready`."""
    if view.status in ("failed", "cancelled"):
        raise AppError(
            409,
            "task_failed",
            "the task ended without a result",
            {"status": status_of(view), "error": error_text(view)},
        )
    if view.status != "succeeded" or not view.outputs:
        raise AppError(409, "result_not_ready", "the task has not finished yet", {"status": status_of(view)})


def generation_result(view: TaskView, image: bytes, output_size: str | None) -> dict[str, Any]:
    """`GET /api/generate/result/{task_id}` for a succeeded task whose primary output is `image`."""
    ref = view.client_ref
    elapsed = (view.finished_at - view.created_at).total_seconds() if view.finished_at else None
    labels = ref.get("conditional_labels") or []
    return {
        "task_id": str(view.id),
        "status": "done",
        "success": True,
        "image": base64.b64encode(image).decode(),
        "generation_time": None if elapsed is None else round(elapsed, 3),
        "model_used": ref.get("model_used", ""),
        "parameters_used": ref.get("parameters") or {},
        "request_id": str(view.id),
        "debug_info": {
            "task_type": ref.get("task_type"),
            "input_image_size": ref.get("input_image_size"),
            "output_image_size": output_size,
            "conditional_images": len(labels),
            "conditional_labels": labels,
            "unused_parameters": ref.get("unused") or [],
            "steps": view.step_count,
            "lora_adapter": None,
            "loaded_adapters": [],
        },
    }


def cancelled_message(kind: str, task_id: str) -> str:
    """The seed's cancel message: `Async generation task {id} marked for cancellation` (and smart mask's)."""
    return f"{kind} {task_id} marked for cancellation"
