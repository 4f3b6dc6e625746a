"""ArtMancer's generation API (seed 002, section 1) at the seed's own paths: `POST /api/generate`,
`/api/generate/async`, `GET /api/generate/status|result|stream/{task_id}`, `POST /api/generate/async/cancel/{id}`.
Thin over `boothbridge.tasks` (the engine) and `boothbridge.artmancer` (bodies, each request as a task, answers);
README "ArtMancer API" has the decisions where the seed is silent. Auth: `ClientDep` (an API key).

Status codes are the seed's: 200 for every success; 400 for a body that is not valid (the house's
`validation_error`, and the engine's input and settings errors, answered 422 elsewhere, are 400 here); 404
`task_not_found` (unknown, another operator's, or not a generation task); 503 `provider_unavailable` when the
configured edit provider is not available in this deployment (no key). The engine's 413 `input_too_large` and 415
`input_not_image` keep their status. A result asked for too early or of a failed task: 409 `result_not_ready` /
`task_failed`; a cancel of a task that has ended: 409 `job_finished`.

The engine's modules (psycopg), sse-starlette and Pillow are imported by the endpoints, not here: the API's cold
import stays light.
"""

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import Response

from boothbridge.artmancer import mapping, models, results
from boothbridge.errors import AppError
from boothbridge.http.openapi import BODY, errors, merge
from boothbridge.tasks.model import INPUT_ERRORS, parse_task_id, task_not_found
from functions.api_v1.deps import KEY_AUTH, ClientDep, ContainerDep, task_service

if TYPE_CHECKING:
    from sse_starlette import EventSourceResponse

    from boothbridge.accounts.machine_client import MachineClient
    from boothbridge.bootstrap import Container
    from boothbridge.tasks.model import TaskSpec, TaskView

router = APIRouter(prefix="/api", tags=["artmancer"])

NOT_FOUND = "404 task_not_found"
# What submitting can answer besides the body's shape: the engine's input errors (its 422s answered 400 here).
SUBMIT = (
    *BODY,
    *(f"400 {entry.split(' ', 1)[1]}" if entry.startswith("422 ") else entry for entry in INPUT_ERRORS),
    "400 invalid_settings",
    "503 provider_unavailable",
)
GENERATE_ERRORS = errors(*KEY_AUTH, *SUBMIT, "400 mask_required", "400 reference_required", "400 mask_empty")
# The engine's "no provider can serve this" errors: a deployment without the configured provider or operation.
_UNSERVED = ("provider_unavailable", "unknown_provider", "unsupported_operation")
POLL_SEC = 0.25  # the stream's re-read period: step and phase changes notify nobody (jobs.py's POLL_SEC)
KEEPALIVE_SEC = 15.0
# How long one stream may last. A buffered Lambda (Mangum) sends nothing before the response ends, so there it
# stays under the function's 30 s timeout (README "ArtMancer API").
MAX_STREAM_SEC = 25.0 if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else 900.0

_service = task_service


def seed_error(err: AppError, fields: dict[str, str]) -> AppError:
    """An engine error with the seed's status (422 -> 400; no provider -> 503 `provider_unavailable`) and, for an
    input's error, `details.field` naming the body field it came from (`fields`: engine input name -> field)."""
    name = err.details.get("input")
    if isinstance(name, str) and name in fields:
        err.details["field"] = fields[name]
    if err.code in _UNSERVED:
        return AppError(503, "provider_unavailable", err.message, err.details)
    if err.status == 422:
        return AppError(400, err.code, err.message, err.details)
    return err


async def submit(c: "Container", client: "MachineClient", spec: "TaskSpec", fields: dict[str, str]) -> "TaskView":
    try:
        return await (await _service(c)).submit(client, spec)
    except AppError as err:
        raise seed_error(err, fields) from None


async def caller_task(
    c: "Container", client: "MachineClient", task_id: str, endpoints: tuple[str, ...] = (mapping.GENERATE,)
) -> "TaskView":
    """The caller's ArtMancer task of one of `endpoints`; 404 `task_not_found` otherwise."""
    try:  # a malformed id, an unknown task and another operator's: one 404, naming the id as the caller gave it
        view = await (await _service(c)).get(client, parse_task_id(task_id))
    except AppError as err:
        if err.status == 404:
            raise task_not_found(task_id) from None
        raise
    return results.checked(view, task_id, endpoints)


def _generation_inputs(body: models.GenerationRequest, max_bytes: int, max_pixels: int) -> tuple[Any, str | None]:
    """(the edit's second image as an InputRef or None, the photo's size) — CPU work, run in a thread."""
    from boothbridge.artmancer import guide  # deferred: Pillow
    from boothbridge.tasks.fetch import decode_base64
    from boothbridge.tasks.model import InputRef

    try:
        photo = decode_base64(body.input_image, max_bytes)
    except AppError as err:
        err.details["field"] = "input_image"
        raise
    size = guide.size_label(photo)
    if body.task_type == "white-balance":
        return None, size
    if body.task_type == "removal":
        return InputRef(base64=body.conditional_images[0]), size
    assert body.reference_image is not None  # mapping.check_generation
    mask = guide.decoded(body.conditional_images[0], "conditional_images.0", max_bytes, max_pixels)
    reference = guide.decoded(body.reference_image, "reference_image", max_bytes, max_pixels)
    ref_mask = body.reference_mask_R
    cut = None if ref_mask is None else guide.decoded(ref_mask, "reference_mask_R", max_bytes, max_pixels)
    made = guide.insertion_guide(mask, reference, cut)
    return InputRef(base64=base64.b64encode(made).decode()), size


async def _edit_provider_ready(c: "Container") -> None:
    """503 `provider_unavailable` unless the edit provider can run: in this deployment, with an API key in effect
    (the settings page's, else the environment's). Online adapters are built without a key (one may be saved
    later), so the engine's own check (is it built?) would queue an edit bound to fail with `api_key_missing`."""
    provider_id = c.settings.artmancer_edit_provider
    await c.settings_store.refresh()
    if not c.monitoring.provider_configured(provider_id):
        raise AppError(
            503,
            "provider_unavailable",
            f"the edit provider {provider_id!r} is not configured (no API key)",
            {"provider_id": provider_id},
        )


async def _generate(body: models.GenerationRequest, client: "MachineClient", c: "Container") -> dict[str, str]:
    mapping.check_generation(body)
    if body.task_type != "white-balance":
        await _edit_provider_ready(c)
    s = c.settings
    try:
        second, size = await asyncio.to_thread(_generation_inputs, body, s.max_upload_bytes, s.max_image_pixels)
    except AppError as err:  # the guide's images are checked here, before the engine: the seed's statuses too
        raise seed_error(err, {}) from None
    edit = mapping.EditTarget(s.artmancer_edit_provider, s.artmancer_edit_model)
    spec = mapping.generation_task(body, edit, second, size)
    image_field = "conditional_images.0" if body.task_type == "removal" else "conditional_images.0+reference_image"
    fields = {"source": "input_image", f"steps/0/inputs/{mapping.EDIT_IMAGE}": image_field}
    view = await submit(c, client, spec, fields)
    return {"task_id": str(view.id), "status": "queued", "message": "Generation job submitted successfully"}


@router.post("/generate", response_model=models.GenerationQueued, responses=GENERATE_ERRORS)
async def generate(body: models.GenerationRequest, client: ClientDep, c: ContainerDep) -> dict[str, str]:
    """Submit a generation (`task_type` insertion, removal or white-balance); follow it on status or stream."""
    return await _generate(body, client, c)


@router.post("/generate/async", response_model=models.GenerationQueued, responses=GENERATE_ERRORS)
async def generate_async(body: models.GenerationRequest, client: ClientDep, c: ContainerDep) -> dict[str, str]:
    """The same as `POST /api/generate` (every generation runs asynchronously here)."""
    return await _generate(body, client, c)


@router.get(
    "/generate/status/{task_id}",
    response_model=models.GenerationStatusBody,
    responses=errors(*KEY_AUTH, NOT_FOUND),
)
async def generation_status(task_id: str, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """queued, processing, done, error or cancelled; progress 0..1; step k of n (the task's steps)."""
    return results.status_body(await caller_task(c, client, task_id))


@router.get(
    "/generate/result/{task_id}",
    response_model=models.GenerationResult,
    responses=errors(*KEY_AUTH, NOT_FOUND, "409 result_not_ready", "409 task_failed", "410 output_expired"),
)
async def generation_result(task_id: str, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """The result image (base64) with the parameters used and debug information, once the task is done."""
    from boothbridge.artmancer.guide import size_label  # deferred: Pillow

    view = await caller_task(c, client, task_id)
    results.finished(view)
    data, _mime = await (await _service(c)).output(client, view.id, 0)
    return results.generation_result(view, data, size_label(data))


SSE_EVENT = {
    "type": "object",
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": '`{"task_id", "status", "progress", "current_step", "total_steps", "loading_message"}`',
        }
    },
}


@router.get(
    "/generate/stream/{task_id}",
    response_model=None,
    response_class=Response,
    responses=merge(
        {
            200: {
                "description": "a `data:` event at each change of status, step or phase; ends after the last status",
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            }
        },
        errors(*KEY_AUTH, NOT_FOUND),
    ),
)
async def generation_stream(task_id: str, client: ClientDep, c: ContainerDep) -> "EventSourceResponse":
    """Server-Sent Events: the task's status now, then each change as it happens; the stream ends after done,
    error or cancelled. Headers: `Content-Type: text/event-stream`, `Cache-Control: no-cache`,
    `Connection: keep-alive`."""
    from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent

    view = await caller_task(c, client, task_id)  # a JSON error before the stream starts
    service = await _service(c)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        watched = service.watch(client, view.id, poll_sec=POLL_SEC, max_sec=MAX_STREAM_SEC)
        async for state in watched:
            yield JSONServerSentEvent(results.stream_event(state), sep="\n")

    return EventSourceResponse(
        stream(),
        headers={"Cache-Control": "no-cache", "Connection": "keep-alive"},
        ping=KEEPALIVE_SEC,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
        sep="\n",
    )


@router.post(
    "/generate/async/cancel/{task_id}",
    response_model=models.GenerationCancelled,
    responses=errors(*KEY_AUTH, NOT_FOUND, "409 job_finished"),
)
async def cancel_generation(task_id: str, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """Cancel a generation that has not ended (409 `job_finished` once it has): a queued one at once, a running
    one at its next heartbeat (its result is discarded)."""
    view = await caller_task(c, client, task_id)
    await (await _service(c)).cancel(client, view.id)
    message = results.cancelled_message("Async generation task", str(view.id))
    return {"success": True, "message": message, "task_id": str(view.id)}
