"""AIGE's API (seeds 000/001) under `/api/v1`: avatar, background, overlay, upscaled, video, reframe, refine, task
status, finetune and flux-ultra. Thin over `boothbridge.tasks` (the engine) and `boothbridge.aige` (the bodies, each
endpoint as a task, the answers); README "AIGE API" has the decisions where the seeds are vague.

Status codes as the seeds give them: `POST /avatar` 201, the PUTs and the rest 200; a body `avatar_id` that is not
the path's 400 `avatar_id_mismatch`; a task that is not the caller's operator's (or does not exist) 404
`task_not_found`; a result not there yet 404 (`result_not_ready`, `task_failed`). A body that does not match the
seed's shape (a bad aspect ratio, a missing prompt) is 422 `validation_error` as AIGE's own FastAPI app answered
(this API's other routes answer 400): `details.fields` names each field. Auth: `ClientDep` (an API key).

The engine's modules (psycopg) are imported by the endpoints, not here: the API's cold import stays light.
"""

import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from boothbridge.aige import mapping, models, results
from boothbridge.errors import AppError
from boothbridge.http.openapi import errors
from boothbridge.tasks.model import INPUT_ERRORS
from functions.api_v1.deps import KEY_AUTH, ClientDep, ContainerDep, task_service

if TYPE_CHECKING:
    from boothbridge.accounts.machine_client import MachineClient
    from boothbridge.bootstrap import Container
    from boothbridge.tasks.model import TaskSpec, TaskView

INVALID_422 = "422 validation_error"
# What submitting a task can answer besides the body's shape (the engine's input and pipeline errors).
SUBMIT = (
    INVALID_422,
    *INPUT_ERRORS,
    "422 invalid_settings",
    "422 provider_unavailable",
)
PUT_ERRORS = errors(*KEY_AUTH, "400 avatar_id_mismatch", *SUBMIT)
NOT_FOUND = "404 task_not_found"


class AigeRoute(APIRoute):
    """A route whose body validation errors are 422 `validation_error` (AIGE's FastAPI app's status) in the uniform
    error format, instead of the house's 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                fields = [
                    {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
                    for e in exc.errors()
                ]
                raise AppError(422, "validation_error", "the request is not valid", {"fields": fields}) from None

        return handle


router = APIRouter(prefix="/api/v1", tags=["aige"], route_class=AigeRoute)


_service = task_service


async def _submit(c: "Container", client: "MachineClient", spec: "TaskSpec", endpoint: str) -> "TaskView":
    try:
        return await (await _service(c)).submit(client, spec)
    except AppError as err:
        raise mapping.with_aige_field(err, endpoint) from None


async def _task(c: "Container", client: "MachineClient", task_id: str, endpoint: str | None) -> "TaskView":
    """The caller's AIGE task `task_id` (of `endpoint`'s kind when given); 404 `task_not_found` otherwise."""
    try:
        parsed = uuid.UUID(task_id)
    except ValueError:
        raise results.task_not_found(task_id[:100]) from None
    try:
        view = await (await _service(c)).get(client, parsed)
    except AppError as err:
        if err.status == 404:
            raise results.task_not_found(task_id) from None
        raise
    return results.checked(view, task_id, endpoint)


def _started(view: "TaskView", avatar_id: str) -> models.AvatarTask:
    return models.AvatarTask(aige_task_id=str(view.id), avatar_id=avatar_id)


@router.post(
    "/avatar",
    status_code=201,
    response_model=models.AvatarTask,
    responses=errors(*KEY_AUTH, *SUBMIT),
)
async def create_avatar(body: models.AvatarRequest, client: ClientDep, c: ContainerDep) -> models.AvatarTask:
    """Generate an avatar (fal `avatar`, then `remove_background`); without `avatar_id` one is made."""
    avatar_id = body.avatar_id or f"avatar-{uuid.uuid4().hex}"
    view = await _submit(c, client, mapping.avatar_task(body, avatar_id), mapping.AVATAR)
    return _started(view, avatar_id)


@router.put("/avatar/{avatar_id}/background", response_model=models.AvatarTask, responses=PUT_ERRORS)
async def background(
    avatar_id: str, body: models.BackgroundRequest, client: ClientDep, c: ContainerDep
) -> models.AvatarTask:
    """Generate a background from a prompt (fal `generate`)."""
    avatar_id = mapping.avatar_id_for(avatar_id, body.avatar_id)
    return _started(await _submit(c, client, mapping.background_task(body, avatar_id), mapping.BACKGROUND), avatar_id)


@router.put("/avatar/{avatar_id}/overlay", response_model=models.AvatarTask, responses=PUT_ERRORS)
async def overlay(avatar_id: str, body: models.OverlayRequest, client: ClientDep, c: ContainerDep) -> models.AvatarTask:
    """Put the person over the background (local `overlay`, offline)."""
    avatar_id = mapping.avatar_id_for(avatar_id, body.avatar_id)
    return _started(await _submit(c, client, mapping.overlay_task(body, avatar_id), mapping.OVERLAY), avatar_id)


@router.put("/avatar/{avatar_id}/upscaled", response_model=models.AvatarTask, responses=PUT_ERRORS)
async def upscaled(
    avatar_id: str, body: models.UpscaleRequest, client: ClientDep, c: ContainerDep
) -> models.AvatarTask:
    """Upscale an image (fal `upscale`, Real-ESRGAN)."""
    avatar_id = mapping.avatar_id_for(avatar_id, body.avatar_id)
    return _started(await _submit(c, client, mapping.upscale_task(body, avatar_id), mapping.UPSCALED), avatar_id)


@router.put("/avatar/{avatar_id}/video", response_model=models.AvatarTask, responses=PUT_ERRORS)
async def video(avatar_id: str, body: models.VideoRequest, client: ClientDep, c: ContainerDep) -> models.AvatarTask:
    """Make a video of an image (fal `image_to_video`, Kling)."""
    avatar_id = mapping.avatar_id_for(avatar_id, body.avatar_id)
    return _started(await _submit(c, client, mapping.video_task(body, avatar_id), mapping.VIDEO), avatar_id)


@router.put("/avatar/{avatar_id}/reframe", response_model=models.AvatarTask, responses=PUT_ERRORS)
async def reframe(avatar_id: str, body: models.ReframeRequest, client: ClientDep, c: ContainerDep) -> models.AvatarTask:
    """Reframe an image to another aspect ratio (fal `reframe`)."""
    avatar_id = mapping.avatar_id_for(avatar_id, body.avatar_id)
    return _started(await _submit(c, client, mapping.reframe_task(body, avatar_id), mapping.REFRAME), avatar_id)


@router.put("/avatar/{avatar_id}/refine", response_model=models.AvatarTask, responses=PUT_ERRORS)
async def refine(avatar_id: str, body: models.RefineRequest, client: ClientDep, c: ContainerDep) -> models.AvatarTask:
    """Edit an image following a prompt (fal `edit`, FLUX.1 Kontext Max)."""
    avatar_id = mapping.avatar_id_for(avatar_id, body.avatar_id)
    return _started(await _submit(c, client, mapping.refine_task(body, avatar_id), mapping.REFINE), avatar_id)


@router.get("/task/{aige_task_id}/status", response_model=models.TaskStatus, responses=errors(*KEY_AUTH, NOT_FOUND))
async def task_status(aige_task_id: str, client: ClientDep, c: ContainerDep) -> dict[str, str]:
    """The task's AIGE status: pending, processing_<model>, uploading_image / uploading_video, done or error."""
    return results.status_body(await _task(c, client, aige_task_id, None))


@router.post("/finetune", response_model=models.FinetuneId, responses=errors(*KEY_AUTH, *SUBMIT))
async def finetune(body: models.FinetuneRequest, client: ClientDep, c: ContainerDep) -> models.FinetuneId:
    """Start a FLUX.1 Pro fine-tune (fal `finetune`); `finetune_id` is our task id, to poll the result with."""
    view = await _submit(c, client, mapping.finetune_task(body), mapping.FINETUNE)
    return models.FinetuneId(finetune_id=str(view.id))


@router.get(
    "/finetune/result/{request_id}",
    response_model=models.FinetuneId,
    responses=errors(*KEY_AUTH, NOT_FOUND, "404 result_not_ready", "404 task_failed"),
)
async def finetune_result(request_id: str, client: ClientDep, c: ContainerDep) -> dict[str, str]:
    """fal's id of the finished fine-tune (for `POST /flux-ultra`); 404 until it is done."""
    return results.finetune_result(await _task(c, client, request_id, mapping.FINETUNE))


@router.post("/flux-ultra", response_model=models.UltraStarted, responses=errors(*KEY_AUTH, *SUBMIT))
async def flux_ultra(body: models.FluxUltraRequest, client: ClientDep, c: ContainerDep) -> models.UltraStarted:
    """Generate with a fine-tune (fal `generate_finetuned`); `request_id` is our task id, to poll the result with."""
    view = await _submit(c, client, mapping.flux_ultra_task(body), mapping.FLUX_ULTRA)
    return models.UltraStarted(request_id=str(view.id))


@router.get(
    "/flux-ultra/result/{request_id}",
    response_model=models.UltraResult,
    responses=errors(*KEY_AUTH, NOT_FOUND, "404 result_not_ready", "404 task_failed", "410 output_expired"),
)
async def flux_ultra_result(request_id: str, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """fal's result shape with our temporary public links to the images; 404 until it is done."""
    view = await _task(c, client, request_id, mapping.FLUX_ULTRA)
    service = await _service(c)

    async def read(output: Any) -> tuple[bytes, str]:
        return await service.output(client, view.id, output.index)

    publish = results.publisher(c.media, c.settings.base_url, c.settings.public_link_ttl_sec, client.owner_id)
    return await results.ultra_result(view, read, publish)
