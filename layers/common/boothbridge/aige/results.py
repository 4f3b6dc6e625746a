"""AIGE's answers about a task (seeds 000/001), built from the task engine's `TaskView`: the status, the fine-tune's
id, FLUX Ultra's fal-shaped result. Pure but for `ultra_result`, which reads and publishes through the callables it
is given (no FastAPI, no database of its own).

Which task an id may name: an AIGE task of the caller's operator (`TaskService.get` scopes by operator; another
operator's task is "not found" exactly like a missing one). The result endpoints answer only for their own kind
(`client_ref["endpoint"]`): a fine-tune's id is no FLUX Ultra request and the other way round.

Errors (`AppError`, all 404 as the seeds say, with distinct codes): `task_not_found` (unknown, another operator's,
not AIGE's or not this endpoint's kind), `result_not_ready` (`details.status`: the AIGE status now), `task_failed`
(ended without a result: failed or cancelled; `details.error` is the task's error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boothbridge.errors import AppError
from boothbridge.tasks.model import TaskOutput, TaskView

if TYPE_CHECKING:
    from boothbridge.media.service import MediaService

API = "aige"
_ENDED_WITHOUT_RESULT = ("failed", "cancelled")

# Reads an output's bytes: (media id as given by the view's output) -> (bytes, mime).
OutputReader = Callable[[TaskOutput], Awaitable[tuple[bytes, str]]]
# Publishes bytes as a temporary public link: (bytes, mime) -> URL.
Publisher = Callable[[bytes, str], Awaitable[str]]


def task_not_found(task_id: str) -> AppError:
    return AppError(404, "task_not_found", "no such task", {"aige_task_id": task_id})


def checked(view: TaskView | None, task_id: str, endpoint: str | None = None) -> TaskView:
    """`view` when it is an AIGE task (of `endpoint`'s kind, when given); else 404 `task_not_found`."""
    if view is None or view.api != API:
        raise task_not_found(task_id)
    if endpoint is not None and view.client_ref.get("endpoint") != endpoint:
        raise task_not_found(task_id)
    return view


def status_body(view: TaskView) -> dict[str, str]:
    """`GET /task/{id}/status`: `{"aige_task_id", "status"}` (the AIGE phase: pending, processing_..., uploading_image
    or uploading_video, done, error)."""
    return {"aige_task_id": str(view.id), "status": view.phase}


def _finished(view: TaskView) -> None:
    """Raise unless the task succeeded: 404 `task_failed` for one that ended without a result, 404
    `result_not_ready` while it runs."""
    if view.status in _ENDED_WITHOUT_RESULT:
        error = view.error.model_dump() if view.error else None
        raise AppError(404, "task_failed", "the task ended without a result", {"status": view.phase, "error": error})
    if view.status != "succeeded":
        raise AppError(404, "result_not_ready", "the task has not finished yet", {"status": view.phase})


def finetune_result(view: TaskView) -> dict[str, str]:
    """`GET /finetune/result/{id}`: `{"finetune_id"}`, fal's id of the finished fine-tune (the task's record)."""
    _finished(view)
    finetune_id = (view.result_data or {}).get("finetune_id")
    if not isinstance(finetune_id, str) or not finetune_id:
        raise AppError(404, "task_failed", "the fine-tune finished without an id", {"status": view.phase})
    return {"finetune_id": finetune_id}


@dataclass(frozen=True)
class PublishedImage:
    """One image of a result as fal describes it: our temporary public URL, its size in pixels, its type."""

    url: str
    width: int
    height: int
    content_type: str


async def ultra_result(view: TaskView, read: OutputReader, publish: Publisher) -> dict[str, Any]:
    """`GET /flux-ultra/result/{id}`: fal's result shape `{"images": [{url, width, height, content_type}],
    "timings", "seed", "has_nsfw_concepts", "prompt"}` with each output (primary first) published as a temporary
    public link; the other fields are fal's, as the task kept them (`timings` {}, `seed` and `prompt` null and
    `has_nsfw_concepts` one false per image when fal sent none, or something of another type)."""
    from boothbridge.images import codec  # Pillow: only when a result is read, not with the API's cold import

    _finished(view)
    images: list[PublishedImage] = []
    for output in sorted(view.outputs, key=lambda o: o.index):
        data, mime = await read(output)
        width, height = codec.upright_size(data) or (0, 0)
        images.append(PublishedImage(await publish(data, mime), width, height, mime))
    record = view.result_data or {}
    body: dict[str, Any] = {"images": [image.__dict__ for image in images]}
    # fal's fields, where they have the documented types (anything else is left out, never passed on).
    timings, seed, nsfw, prompt = (record.get(name) for name in ("timings", "seed", "has_nsfw_concepts", "prompt"))
    body["timings"] = timings if isinstance(timings, dict) else {}
    body["seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    flags = isinstance(nsfw, list) and all(isinstance(flag, bool) for flag in nsfw)
    body["has_nsfw_concepts"] = nsfw if flags else [False] * len(images)
    body["prompt"] = prompt if isinstance(prompt, str) else None
    return body


def publisher(media: MediaService, base_url: str, ttl_sec: int, owner_id: int) -> Publisher:
    """Publishes result bytes as `owner_id`'s temporary public link (`GET /public/media/{id}`, expiring after
    `ttl_sec`, PUBLIC_LINK_TTL_SEC): the same bytes asked for again reuse one object, its expiry pushed on."""
    from boothbridge.media.links import PublicLinks  # the media layer (SQLAlchemy): at the first result read

    links = PublicLinks(media, base_url, ttl_sec, webhooks=False)

    async def publish(data: bytes, mime: str) -> str:
        expires = datetime.now(UTC) + timedelta(seconds=ttl_sec)
        ref = await media.save("public", data, mime, expires, owner_id=owner_id)
        return links.media_url(ref.id)

    return publish
