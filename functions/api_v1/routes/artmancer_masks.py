"""ArtMancer's mask and image-utility API (seed 002, sections 2 and 3): `POST /api/smart-mask` and its cancel,
`POST /api/image-utils/extract-object`. Each request is a task of one `local` step that the request waits for
(ARTMANCER_WAIT_SEC), so the answer is synchronous as the seed's; README "ArtMancer API".

Status codes: 200 with the seed's body; 400 for a body that is not valid (`validation_error`: e.g. neither bbox,
points nor auto_detect, or both image and image_id) and the engine's input errors (as in
`artmancer_generate`); 400 `invalid_settings` when a point lies outside the image or the box misses it
(`details.fields`; judged by the image's header before anything is stored, `mapping.check_smart_mask_fits`), or
when the operation refused the values once the image was decoded (`details.request_id`); 404 `media_not_found`
for an `image_id` that is not a live image of the caller's operator; 504 `processing_timeout`
(`details.request_id`) when the task has not ended in time (it keeps running and can be cancelled); 502
`provider_failed` / `job_cancelled` when it ended without a result. The cancel: 404 `task_not_found`, 409
`job_finished`.
"""

import base64
import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from boothbridge.artmancer import mapping, models, results
from boothbridge.errors import AppError
from boothbridge.http.openapi import errors
from functions.api_v1.deps import KEY_AUTH, ClientDep, ContainerDep, task_service
from functions.api_v1.routes.artmancer_generate import NOT_FOUND, SUBMIT, caller_task, submit

if TYPE_CHECKING:
    from boothbridge.accounts.machine_client import MachineClient
    from boothbridge.bootstrap import Container
    from boothbridge.tasks.model import TaskSpec, TaskView

router = APIRouter(prefix="/api", tags=["artmancer"])

_service = task_service
WAITED = (*SUBMIT, "502 provider_failed", "502 job_cancelled", "504 processing_timeout")


async def _run(
    c: "Container", client: "MachineClient", spec: "TaskSpec", fields: dict[str, str]
) -> tuple["TaskView", bytes]:
    """Submit `spec`, wait for it, and return the task and its primary output's bytes (errors: module docstring)."""
    view = await submit(c, client, spec, fields)
    service = await _service(c)
    view = await service.wait(client, view.id, c.settings.artmancer_wait_sec, current=view)
    request_id = str(view.id)
    if view.status == "succeeded" and view.outputs:
        data, _mime = await service.output(client, view.id, 0)
        return view, data
    if view.status == "cancelled":
        raise AppError(502, "job_cancelled", "the request was cancelled", {"request_id": request_id})
    if view.status == "failed" and view.error is not None and view.error.code == "settings_invalid":
        # The operation refused the request's values for this image (a point outside it, a box that misses it):
        # the caller's mistake, known only once the image is decoded, not a provider failure.
        raise AppError(400, "invalid_settings", view.error.message, {"request_id": request_id})
    if view.status == "failed":
        error = view.error.model_dump() if view.error else None
        raise AppError(502, "provider_failed", "the request failed", {"request_id": request_id, "error": error})
    raise AppError(
        504,
        "processing_timeout",
        "the request did not finish in time; it keeps running and can be cancelled",
        {"request_id": request_id, "status": results.status_of(view)},
    )


def _image_ref(body: models.SmartMaskRequest, max_bytes: int) -> tuple[Any, str | None, tuple[int, int] | None]:
    """The smart mask's image as an InputRef and, for a new image, its sha256 (to find its media id once stored)
    and its upright size (W, H px) from its header (None when unreadable: the engine answers why)."""
    from boothbridge.images.codec import upright_size  # deferred: Pillow
    from boothbridge.tasks.fetch import decode_base64
    from boothbridge.tasks.model import InputRef

    if body.image_id is not None:
        try:
            return InputRef(media_id=uuid.UUID(body.image_id)), None, None
        except ValueError:
            raise AppError(404, "media_not_found", "no such cached image", {"field": "image_id"}) from None
    assert body.image is not None  # the model asks for exactly one
    try:
        data = decode_base64(body.image, max_bytes)
    except AppError as err:
        err.details["field"] = "image"
        raise
    return InputRef(base64=body.image), hashlib.sha256(data).hexdigest(), upright_size(data)


async def _stored_size(c: "Container", client: "MachineClient", media_id: uuid.UUID) -> tuple[int, int] | None:
    """The upright size (W, H px) of the caller's stored image `media_id` (an `image_id`), from its header; looked
    up as the task engine does (`tasks.inputs`: the caller's operator's live objects). None when it is not such an
    image (another's, gone, not an image): the engine then answers why, storing nothing."""
    from boothbridge.images.codec import upright_size  # deferred: Pillow
    from boothbridge.media.service import MediaExpired, MediaNotFound

    try:
        ref = await c.media.describe(media_id, owner_id=client.owner_id)
        return upright_size(await c.media.read_described(ref)) if ref.mime.startswith("image/") else None
    except (MediaNotFound, MediaExpired):
        return None


@router.post(
    "/smart-mask",
    response_model=models.SmartMaskResponse,
    responses=errors(*KEY_AUTH, *WAITED),
)
async def smart_mask(body: models.SmartMaskRequest, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """A mask (PNG, white: the object) from a box, points and/or auto-detection (local `smart_mask`). Send `image`
    the first time; the answer's `image_id` names it for the next requests on the same image."""
    image, sha, size = _image_ref(body, c.settings.max_upload_bytes)
    source = "image" if body.image is not None else "image_id"
    spec = mapping.smart_mask_task(body, image)
    if body.bbox is not None or body.points or body.background_points:
        # A box or point that fits no part of the image is refused before anything is stored (the worker refuses
        # it too, but only once the task and its image are).
        if image.media_id is not None:
            size = await _stored_size(c, client, image.media_id)
        mapping.check_smart_mask_fits(spec, size)
    view, data = await _run(c, client, spec, {"source": source, "steps/0/inputs/mask_media_id": "mask"})
    image_id = body.image_id
    if sha is not None:  # the image as the task stored it (the caller's, de-duplicated by its bytes)
        ref = await c.media.find_live(sha, client.owner_id, ("public",))
        image_id = str(ref.id) if ref is not None else None
    mask = base64.b64encode(data).decode()
    return {"success": True, "mask_base64": mask, "image_id": image_id, "request_id": str(view.id), "error": None}


@router.post(
    "/smart-mask/cancel/{request_id}",
    response_model=models.SmartMaskCancelled,
    responses=errors(*KEY_AUTH, NOT_FOUND, "409 job_finished"),
)
async def cancel_smart_mask(request_id: str, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """Cancel a smart mask request still running (one whose answer was a 504); 409 `job_finished` once it ended."""
    view = await caller_task(c, client, request_id, (mapping.SMART_MASK,))
    await (await _service(c)).cancel(client, view.id)
    message = results.cancelled_message("Smart mask request", str(view.id))
    return {"success": True, "message": message, "request_id": str(view.id)}


@router.post(
    "/image-utils/extract-object",
    response_model=models.ExtractObjectResponse,
    responses=errors(*KEY_AUTH, *WAITED),
)
async def extract_object(body: models.ExtractObjectRequest, client: ClientDep, c: ContainerDep) -> dict[str, Any]:
    """The object as a PNG with transparency: the mask's white keeps, black becomes transparent (local
    `extract_object`; the mask is resized to the image)."""
    spec = mapping.extract_object_task(body)
    _view, data = await _run(c, client, spec, {"source": "image", "steps/0/inputs/mask_media_id": "mask"})
    return {"success": True, "extracted_image": base64.b64encode(data).decode(), "error": None}
