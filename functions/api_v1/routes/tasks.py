"""Machine clients' task API under `/api/v1` (issue 15; SPEC §11): a pipeline of steps from the request, inputs by
URL, base64 or media id, detailed status in AIGE's phase names, cancel, outputs, delivery to a pre-signed writeUrl.
Thin over `boothbridge.tasks` (README "Tasks"). Auth: `ClientDep` (an API key); a task or output of another
operator's is 404 `task_not_found`, like one that does not exist.

The engine's modules (psycopg) are imported by the endpoints, not here: the API's cold import stays light
(`boothbridge.tasks.model` is pydantic only).
"""

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile

from boothbridge.errors import AppError
from boothbridge.http.openapi import BODY, errors
from boothbridge.tasks.model import INPUT_ERRORS, TaskPage, TaskSpec, TaskView, UploadedMedia, parse_task_id
from functions.api_v1.deps import KEY_AUTH, ClientDep, ContainerDep, task_service

router = APIRouter(prefix="/api/v1", tags=["tasks"])

NOT_FOUND = "404 task_not_found"
PIPELINE = (
    "422 invalid_pipeline",
    "422 unknown_provider",
    "422 unsupported_operation",
    "422 invalid_settings",
    "422 invalid_finishing",
    "422 unknown_input",
    "422 provider_unavailable",
)


_service = task_service


@router.post(
    "/tasks", status_code=201, response_model=TaskView, responses=errors(*KEY_AUTH, *BODY, *INPUT_ERRORS, *PIPELINE)
)
async def submit_task(spec: TaskSpec, client: ClientDep, c: ContainerDep) -> TaskView:
    """Queue a task: `steps` run in order (each step's output is the next one's input), starting from `source`
    (omit it for a prompt-only operation); `writeUrl` (a pre-signed PUT URL) receives the primary output once it
    is made, and `readUrl` is shown in `deliveries` once it has. Answers the task as queued (phase `pending`)."""
    return await (await _service(c)).submit(client, spec)


@router.get("/tasks", response_model=TaskPage, responses=errors(*KEY_AUTH, *BODY))
async def list_tasks(
    client: ClientDep,
    c: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TaskPage:
    """The caller's operator's tasks, newest first."""
    items, total = await (await _service(c)).list(client, limit=limit, offset=offset)
    return TaskPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/tasks/{task_id}", response_model=TaskView, responses=errors(*KEY_AUTH, NOT_FOUND))
async def get_task(task_id: str, client: ClientDep, c: ContainerDep) -> TaskView:
    """The task's status (job status and AIGE `phase`), progress, outputs, result data, error and deliveries."""
    return await (await _service(c)).get(client, parse_task_id(task_id))


@router.post(
    "/tasks/{task_id}/cancel", response_model=TaskView, responses=errors(*KEY_AUTH, NOT_FOUND, "409 job_finished")
)
async def cancel_task(task_id: str, client: ClientDep, c: ContainerDep) -> TaskView:
    """Cancel a task that has not ended (409 `job_finished` once it has); its provider call is stopped."""
    return await (await _service(c)).cancel(client, parse_task_id(task_id))


@router.get(
    "/tasks/{task_id}/outputs/{index}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "video/mp4": {}}, "description": "the output's bytes"},
        **errors(*KEY_AUTH, NOT_FOUND, "404 output_not_found", "410 output_expired"),
    },
)
async def task_output(task_id: str, index: int, client: ClientDep, c: ContainerDep) -> Response:
    """Output `index` (0: the primary one; 1, 2, ...: further outputs in the provider's order) with its type."""
    if not 0 <= index <= 1000:
        raise AppError(404, "output_not_found", "the task has no such output", {"index": index})
    data, mime = await (await _service(c)).output(client, parse_task_id(task_id), index)
    return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=300"})


@router.post(
    "/media",
    status_code=201,
    response_model=UploadedMedia,
    responses=errors(
        *KEY_AUTH, *BODY, "400 input_empty", "413 input_too_large", "415 input_not_image", *INPUT_ERRORS[-2:]
    ),
)
async def upload_media(
    file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP image")], client: ClientDep, c: ContainerDep
) -> UploadedMedia:
    """Store an input image for the caller's tasks (`{"media_id": ...}` in a task's `source` or `inputs`), kept
    for the result TTL; the same bytes uploaded again by the same operator are the same object."""
    data = await file.read(c.settings.max_upload_bytes + 1)
    return await (await _service(c)).upload(client, data)
