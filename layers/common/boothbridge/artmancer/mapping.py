"""Each ArtMancer request (seed 002) as a task (`boothbridge.tasks.model.TaskSpec`). Pure: bodies in, specs out.

| request                          | steps                                                                        |
|----------------------------------|------------------------------------------------------------------------------|
| generate, `white-balance`        | local `white_balance` (+ local `resize` to width x height)                   |
| generate, `removal`              | <edit provider> `combine_images` [photo, the mask, prompt] (+ `resize`)      |
| generate, `insertion`            | <edit provider> `combine_images` [photo, the guide (`artmancer.guide`),      |
|                                  | prompt] (+ `resize`)                                                         |
| smart-mask                       | local `smart_mask` (box, points, auto-detect, guidance mask)                 |
| image-utils/extract-object       | local `extract_object` (the mask, border adjustment, blur)                   |

The edit provider is ARTMANCER_EDIT_PROVIDER (default `gemini`), its model ARTMANCER_EDIT_MODEL (unset: the
operation's default). `width`/`height` add a final `resize`: both given, the output is exactly that size (scaled to
cover, centre-cropped: `fill`); one given, scaled to it with the aspect kept.

The task's `client_ref` keeps what the answers need: `endpoint`, `task_type`, `model_used`, `parameters` (every
non-image field as given or defaulted, echoed as `parameters_used`), `unused` (the fields this engine has no use
for, named in `debug_info`), `input_image_size`, `conditional_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boothbridge.artmancer import models
from boothbridge.errors import AppError
from boothbridge.providers.local.prompt_geometry import prompt_problems
from boothbridge.tasks.model import InputRef, TaskSpec, TaskStep

API = "artmancer"
LOCAL = "local"
EDIT_OPERATION = "combine_images"  # photo + one more image + prompt (Gemini's image editing)
EDIT_IMAGE = "overlay_media_id"  # combine_images's second image
GENERATE, SMART_MASK, EXTRACT_OBJECT = "generate", "smart-mask", "extract-object"
# Image fields of a GenerationRequest (never echoed: they are the images, not parameters).
_IMAGES = ("input_image", "conditional_images", "reference_image", "reference_mask_R")
# Fields a diffusion pipeline reads and this engine's operations do not (accepted, echoed, named as unused).
_MODEL_KNOBS = (
    "num_inference_steps",
    "guidance_scale",
    "true_cfg_scale",
    "seed",
    "angle",
    "background_preset",
    "input_quality",
    "enable_flowmatch_scheduler",
)

REMOVAL_PROMPT = (
    "The second image is a mask of the first image: its white area marks an object. Remove that object from the "
    "first image and fill its place with what would naturally be behind it, continuing the surrounding background, "
    "lighting and texture seamlessly. Keep everything outside the white area exactly as it is, and keep the first "
    "image's framing."
)
INSERTION_PROMPT = (
    "The second image is a guide with the framing of the first image: on black, it shows an object at the place and "
    "size where it belongs. Insert that object into the first image there, matching the first image's perspective, "
    "lighting, shadows and colours so that it looks naturally part of the scene. Keep everything else exactly as it "
    "is, and keep the first image's framing."
)


@dataclass(frozen=True)
class EditTarget:
    """Which provider runs the insertion and removal edits (`combine_images`), and its model (None: the default)."""

    provider_id: str
    model: str | None = None


def bad_request(code: str, message: str, field: str) -> AppError:
    return AppError(400, code, message, {"field": field})


def check_generation(body: models.GenerationRequest) -> None:
    """What the body's schema cannot say: insertion and removal need the mask (`conditional_images[0]`), insertion
    the reference image. 400 `mask_required` / `reference_required` (`details.field`)."""
    if body.task_type == "white-balance":
        return
    if not body.conditional_images:
        raise bad_request(
            "mask_required", f"{body.task_type} needs a mask in conditional_images[0]", "conditional_images"
        )
    if body.task_type == "insertion" and body.reference_image is None:
        raise bad_request("reference_required", "insertion needs reference_image", "reference_image")


def edit_prompt(task_type: str, prompt: str | None, negative_prompt: str | None) -> str:
    """The provider's prompt for an insertion or removal: what the task type asks, then the caller's prompt, then
    what to avoid. At most 2000 characters (the models' limits keep it so)."""
    parts = [INSERTION_PROMPT if task_type == "insertion" else REMOVAL_PROMPT]
    if prompt and prompt.strip():
        parts.append(f"Request: {prompt.strip()}")
    if negative_prompt and negative_prompt.strip():
        parts.append(f"Avoid: {negative_prompt.strip()}")
    return "\n".join(parts)


def parameters(body: models.GenerationRequest) -> dict[str, Any]:
    """The body's non-image fields as given or defaulted (`parameters_used`)."""
    return body.model_dump(exclude=set(_IMAGES))


def unused_fields(body: models.GenerationRequest) -> list[str]:
    """The fields given (or defaulted) that no step of this task reads."""
    unused = list(_MODEL_KNOBS)
    if body.task_type == "white-balance":
        unused += [name for name in ("prompt", "negative_prompt") if getattr(body, name) is not None]
        unused += [
            name for name in ("conditional_images", "reference_image", "reference_mask_R") if getattr(body, name)
        ]
    else:
        if len(body.conditional_images) > 1:
            unused.append("conditional_images[1:]")
        if body.task_type == "removal":
            unused += [name for name in ("reference_image", "reference_mask_R") if getattr(body, name) is not None]
    return unused


def conditional_labels(body: models.GenerationRequest) -> list[str]:
    """What each conditional image was taken for: the first is the mask (insertion, removal), the rest unused."""
    return [
        "mask" if index == 0 and body.task_type != "white-balance" else "unused"
        for index in range(len(body.conditional_images))
    ]


def resize_step(width: int | None, height: int | None) -> TaskStep | None:
    if width is None and height is None:
        return None
    settings: dict[str, Any] = {"mode": "fill" if width and height else "fit", "upscale": True}
    settings.update({name: value for name, value in (("width", width), ("height", height)) if value is not None})
    return TaskStep(provider_id=LOCAL, operation_id="resize", settings=settings)


def generation_task(
    body: models.GenerationRequest, edit: EditTarget, second_image: InputRef | None, input_size: str | None
) -> TaskSpec:
    """`POST /api/generate(/async)`: see the module's table. `second_image` is the edit's other image (the mask for
    removal, the guide for insertion; None for white-balance); `input_size` the photo's `"WxH"`."""
    check_generation(body)
    if body.task_type == "white-balance":
        steps = [TaskStep(provider_id=LOCAL, operation_id="white_balance", settings={})]
        model_used = "local/white_balance"
    else:
        if second_image is None:
            raise ValueError("an edit needs its second image")
        settings: dict[str, Any] = {"prompt": edit_prompt(body.task_type, body.prompt, body.negative_prompt)}
        if edit.model:
            settings["model"] = edit.model
        steps = [
            TaskStep(
                provider_id=edit.provider_id,
                operation_id=EDIT_OPERATION,
                settings=settings,
                inputs={EDIT_IMAGE: second_image},
            )
        ]
        model_used = f"{edit.provider_id}/{EDIT_OPERATION}" + (f" ({edit.model})" if edit.model else "")
    resize = resize_step(body.width, body.height)
    if resize is not None:
        steps.append(resize)
    client_ref = {
        "endpoint": GENERATE,
        "task_type": body.task_type,
        "model_used": model_used,
        "parameters": parameters(body),
        "unused": unused_fields(body),
        "input_image_size": input_size,
        "conditional_labels": conditional_labels(body),
    }
    return TaskSpec(api=API, steps=steps, source=InputRef(base64=body.input_image), client_ref=client_ref)


def smart_mask_task(body: models.SmartMaskRequest, image: InputRef) -> TaskSpec:
    """`POST /api/smart-mask`: one local `smart_mask` step on `image` (the new image, or the cached one by its media
    id); the guidance `mask` is its `mask_media_id`."""
    settings: dict[str, Any] = {
        "auto_detect": body.auto_detect,
        "border_adjustment": body.border_adjustment,
        "use_blur": body.use_blur,
    }
    # Coordinates go as given: the operation takes fractional pixels, and rounding could move a point at x 511.9
    # of a 512 px photo outside it, or a box to no area.
    if body.bbox is not None:
        settings["bbox"] = list(body.bbox)
    if body.points:
        settings["points"] = [list(point) for point in body.points]
    if body.background_points:
        settings["background_points"] = [list(point) for point in body.background_points]
    inputs = {"mask_media_id": InputRef(base64=body.mask)} if body.mask is not None else {}
    step = TaskStep(provider_id=LOCAL, operation_id="smart_mask", settings=settings, inputs=inputs)
    return TaskSpec(api=API, steps=[step], source=image, client_ref={"endpoint": SMART_MASK})


def check_smart_mask_fits(spec: TaskSpec, size: tuple[int, int] | None) -> None:
    """Raise 400 `invalid_settings` (`details.fields`: `[{field, message}]`, the body's fields such as `bbox` or
    `points.0`) when the smart mask's box or points fit no part of the image of `size` (W x H px, upright; None:
    not known, any image) — the local operation's own rules (`providers.local.prompt_geometry`), checked before
    anything is stored."""
    problems = prompt_problems(spec.steps[0].settings, size)
    if problems:
        image = f"the {size[0]}x{size[1]} image" if size is not None else "any image"
        raise AppError(
            400,
            "invalid_settings",
            f"the box or points do not fit {image}: " + "; ".join(why for _, why in problems),
            {"fields": [{"field": path.replace("/", "."), "message": why} for path, why in problems]},
        )


def extract_object_task(body: models.ExtractObjectRequest) -> TaskSpec:
    """`POST /api/image-utils/extract-object`: local `extract_object` (white keeps, black becomes transparent; PNG)."""
    settings: dict[str, Any] = {"border_adjustment": body.border_adjustment, "use_blur": body.use_blur}
    if body.use_blur:
        settings["blur_radius"] = body.blur_radius
    step = TaskStep(
        provider_id=LOCAL,
        operation_id="extract_object",
        settings=settings,
        inputs={"mask_media_id": InputRef(base64=body.mask)},
    )
    return TaskSpec(api=API, steps=[step], source=InputRef(base64=body.image), client_ref={"endpoint": EXTRACT_OBJECT})
