"""Each AIGE endpoint (seeds 000/001) as a task (`boothbridge.tasks.model.TaskSpec`): which provider operation runs,
with which settings and input images, and the phase names its status shows. Pure: request bodies in, specs out.

| endpoint                   | steps (provider operation → AIGE phase)                                         |
|----------------------------|---------------------------------------------------------------------------------|
| POST /avatar               | fal `avatar` → processing_avatar_model, fal `remove_background` →               |
|                            | processing_background_removal (the avatar comes out cut out, ready for overlay) |
| PUT …/background           | fal `generate` (text to image) → processing_background_model                    |
| PUT …/overlay              | local `overlay` (person over background, offline) → processing_overlay_model    |
| PUT …/upscaled             | fal `upscale` (Real-ESRGAN) → processing_upscale                                |
| PUT …/video                | fal `image_to_video` (Kling) → processing_video                                 |
| PUT …/reframe              | fal `reframe` (Luma Photon) → processing_reframe_model                          |
| PUT …/refine               | fal `edit` (FLUX.1 Kontext Max) → processing_refine_model                       |
| POST /finetune             | fal `finetune` (FLUX Pro trainer; its result is `{"finetune_id"}`)              |
| POST /flux-ultra           | fal `generate_finetuned` (FLUX1.1 Pro Ultra fine-tuned)                         |

An image given as a string (AIGE's `source_images`, `image_url`, `params.person`...) is a URL when it starts with
`http://` or `https://`, else base64 (plain, or a `data:` URI). The task's `client_ref` holds `avatar_id` (when the
endpoint has one) and `endpoint` (the AIGE endpoint's name: the result endpoints answer only for their own kind).
Settings left unset take the catalog's defaults, which are the seeds' (tests/unit/test_aige_mapping.py checks them).
"""

from __future__ import annotations

from typing import Any

from boothbridge.aige import models
from boothbridge.errors import AppError
from boothbridge.tasks.model import MAX_URL_CHARS, InputRef, TaskSpec, TaskStep

API = "aige"
FAL, LOCAL = "fal", "local"
# The endpoint names kept in `client_ref["endpoint"]`.
AVATAR, BACKGROUND, OVERLAY, UPSCALED, VIDEO, REFRAME, REFINE = (
    "avatar",
    "background",
    "overlay",
    "upscaled",
    "video",
    "reframe",
    "refine",
)
FINETUNE, FLUX_ULTRA = "finetune", "flux-ultra"
# The phase AIGE shows while each operation runs (seed 000's "Task Status Values").
PHASES = {
    "avatar": "processing_avatar_model",
    "remove_background": "processing_background_removal",
    "generate": "processing_background_model",
    "overlay": "processing_overlay_model",
    "upscale": "processing_upscale",
    "image_to_video": "processing_video",
    "reframe": "processing_reframe_model",
    "edit": "processing_refine_model",
}
_URL_SCHEMES = ("http://", "https://")


def invalid(field: str, message: str) -> AppError:
    """A 422 `validation_error` naming one field, in the shape FastAPI's validation errors take here."""
    return AppError(
        422, "validation_error", "the request is not valid", {"fields": [{"field": field, "message": message}]}
    )


def input_ref(value: str, field: str) -> InputRef:
    """An AIGE image string as an `InputRef`: a URL (http/https) or base64 (plain or a `data:` URI). Another URL
    scheme (`ftp://`, `file://`...) is refused as 422 `validation_error` at `field`."""
    text = value.strip()
    if text.lower().startswith(_URL_SCHEMES):
        if len(text) > MAX_URL_CHARS:
            raise invalid(field, f"a URL has at most {MAX_URL_CHARS} characters")
        return InputRef(url=text)
    if "://" in text[:16]:
        raise invalid(field, "an image is an http(s) URL or base64")
    return InputRef(base64=text)


# Where each endpoint's images come from in its AIGE body: the engine's input names (`source`,
# `steps/<i>/inputs/<name>`, as its errors' `details.input` give them) -> the AIGE field.
# The fal `avatar` operation's reference photos, in the order they follow the first photo.
AVATAR_REFERENCES = ("reference_media_id", "reference_2_media_id", "reference_3_media_id")

_INPUT_FIELDS = {
    AVATAR: {
        "source": "source_images.0",
        **{f"steps/0/inputs/{name}": f"source_images.{i + 1}" for i, name in enumerate(AVATAR_REFERENCES)},
    },
    OVERLAY: {"source": "params.person", "steps/0/inputs/background_media_id": "params.background"},
    UPSCALED: {"source": "image_url"},
    VIDEO: {"source": "input_img"},
    REFRAME: {"source": "image_url"},
    REFINE: {"source": "image_url"},
}


def with_aige_field(err: AppError, endpoint: str) -> AppError:
    """`err` (an input's error from the task engine, `details.input` naming the input) with `details.field`, the
    AIGE body field the image came from."""
    name = err.details.get("input")
    field = _INPUT_FIELDS.get(endpoint, {}).get(name) if isinstance(name, str) else None
    if field is not None:
        err.details["field"] = field
    return err


MAX_AVATAR_ID = 200  # characters: `models.Delivered.avatar_id`'s limit


def avatar_id_for(path_id: str, body_id: str | None) -> str:
    """The avatar a PUT works on: the path's. A body `avatar_id` that differs is 400 `avatar_id_mismatch` (seed:
    "Must match the avatar_id in the path"). A path id longer than a body's may be (200 characters) is 422
    `validation_error` at `path.avatar_id`: it is kept with the task as a body's is."""
    if len(path_id) > MAX_AVATAR_ID:
        message = f"String should have at most {MAX_AVATAR_ID} characters"
        raise AppError(
            422,
            "validation_error",
            "the request is not valid",
            {"fields": [{"field": "path.avatar_id", "message": message}]},
        )
    if body_id is not None and body_id != path_id:
        raise AppError(
            400,
            "avatar_id_mismatch",
            "the body's avatar_id is not the path's",
            {"path_avatar_id": path_id, "body_avatar_id": body_id},
        )
    return path_id


def _spec(
    endpoint: str,
    steps: list[TaskStep],
    *,
    source: InputRef | None = None,
    avatar_id: str | None = None,
    delivered: models.Delivered | None = None,
) -> TaskSpec:
    client_ref: dict[str, Any] = {"endpoint": endpoint}
    if avatar_id is not None:
        client_ref["avatar_id"] = avatar_id
    operations = {step.operation_id for step in steps}
    return TaskSpec(
        api=API,
        steps=steps,
        source=source,
        client_ref=client_ref,
        write_url=delivered.writeUrl if delivered else None,
        read_url=delivered.readUrl if delivered else None,
        phase_names={op: name for op, name in PHASES.items() if op in operations},
    )


def _set(**values: Any) -> dict[str, Any]:
    """Settings without the fields the caller left unset (the catalog's defaults apply to them)."""
    return {name: value for name, value in values.items() if value is not None}


def avatar_task(body: models.AvatarRequest, avatar_id: str) -> TaskSpec:
    """`POST /avatar`: the first source image is the task's source, the others (up to three) the avatar's
    reference photos in their order; the avatar is then cut out (PNG with transparency)."""
    refs = [input_ref(image, f"source_images.{i}") for i, image in enumerate(body.source_images)]
    inputs = dict(zip(AVATAR_REFERENCES, refs[1:], strict=False))
    steps = [
        TaskStep(
            provider_id=FAL,
            operation_id="avatar",
            settings=_set(prompt=body.prompt, aspect_ratio=body.aspect_ratio),
            inputs=inputs,
        ),
        TaskStep(provider_id=FAL, operation_id="remove_background", settings={}),
    ]
    return _spec(AVATAR, steps, source=refs[0], avatar_id=avatar_id, delivered=body)


def background_task(body: models.BackgroundRequest, avatar_id: str) -> TaskSpec:
    """`PUT /avatar/{id}/background`: text to image, no input image."""
    step = TaskStep(
        provider_id=FAL, operation_id="generate", settings=_set(prompt=body.prompt, aspect_ratio=body.aspect_ratio)
    )
    return _spec(BACKGROUND, [step], avatar_id=avatar_id, delivered=body)


def overlay_task(body: models.OverlayRequest, avatar_id: str) -> TaskSpec:
    """`PUT /avatar/{id}/overlay`: the person (source) over the background, its top-left corner at the position
    (rounded to whole background pixels), cropped to `aspect_ratio`; PNG (lossless, for an upscale after it)."""
    position = body.params.position
    settings = {
        "x": round(position.x),
        "y": round(position.y),
        "scale": position.scale,
        "aspect_ratio": body.aspect_ratio,
        "output": {"format": "png"},
    }
    step = TaskStep(
        provider_id=LOCAL,
        operation_id="overlay",
        settings=settings,
        inputs={"background_media_id": input_ref(body.params.background, "params.background")},
    )
    person = input_ref(body.params.person, "params.person")
    return _spec(OVERLAY, [step], source=person, avatar_id=avatar_id, delivered=body)


def upscale_task(body: models.UpscaleRequest, avatar_id: str) -> TaskSpec:
    """`PUT /avatar/{id}/upscaled`."""
    settings = {"scale": body.scale, "model": body.model, "output_format": body.output_format}
    step = TaskStep(provider_id=FAL, operation_id="upscale", settings=settings)
    return _spec(UPSCALED, [step], source=input_ref(body.image_url, "image_url"), avatar_id=avatar_id, delivered=body)


def video_task(body: models.VideoRequest, avatar_id: str) -> TaskSpec:
    """`PUT /avatar/{id}/video`: the output is a video (the status says `uploading_video` while it is delivered)."""
    settings = {
        "prompt": body.prompt,
        "duration": body.duration,
        "negative_prompt": body.negative_prompt,
        "cfg_scale": body.cfg_scale,
    }
    step = TaskStep(provider_id=FAL, operation_id="image_to_video", settings=settings)
    return _spec(VIDEO, [step], source=input_ref(body.input_img, "input_img"), avatar_id=avatar_id, delivered=body)


def reframe_task(body: models.ReframeRequest, avatar_id: str) -> TaskSpec:
    """`PUT /avatar/{id}/reframe`: the grid and box fields go to fal when given."""
    settings = _set(
        aspect_ratio=body.aspect_ratio,
        prompt=body.prompt or None,
        grid_position_x=body.grid_position_x,
        grid_position_y=body.grid_position_y,
        x_start=body.x_start,
        x_end=body.x_end,
        y_start=body.y_start,
        y_end=body.y_end,
    )
    step = TaskStep(provider_id=FAL, operation_id="reframe", settings=settings)
    return _spec(REFRAME, [step], source=input_ref(body.image_url, "image_url"), avatar_id=avatar_id, delivered=body)


def refine_task(body: models.RefineRequest, avatar_id: str) -> TaskSpec:
    """`PUT /avatar/{id}/refine`: FLUX.1 Kontext Max; with `num_images` > 1 the further images are the task's
    further outputs (the primary one is delivered to `writeUrl`)."""
    settings = _set(
        prompt=body.prompt,
        aspect_ratio=body.aspect_ratio,
        guidance_scale=body.guidance_scale,
        num_images=body.num_images,
        safety_tolerance=body.safety_tolerance,
        output_format=body.output_format,
        seed=body.seed,
    )
    step = TaskStep(provider_id=FAL, operation_id="edit", settings=settings)
    return _spec(REFINE, [step], source=input_ref(body.image_url, "image_url"), avatar_id=avatar_id, delivered=body)


def finetune_task(body: models.FinetuneRequest) -> TaskSpec:
    """`POST /finetune`: the trainer's product is a record (`result_data["finetune_id"]`), not media."""
    settings = _set(**body.model_dump())
    step = TaskStep(provider_id=FAL, operation_id="finetune", settings=settings)
    return _spec(FINETUNE, [step])


def flux_ultra_task(body: models.FluxUltraRequest) -> TaskSpec:
    """`POST /flux-ultra`: text to image with a fine-tune; `num_images` images (the first is the primary output)."""
    step = TaskStep(provider_id=FAL, operation_id="generate_finetuned", settings=_set(**body.model_dump()))
    return _spec(FLUX_ULTRA, [step])
