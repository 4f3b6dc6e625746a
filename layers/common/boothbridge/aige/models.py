"""AIGE's request bodies (seeds 000/001, "API Structure"), field for field: the seeds' names (`writeUrl`/`readUrl`
in camelCase as there), defaults and allowed values. Unknown fields are ignored, as AIGE's FastAPI app ignored
them. Values are checked as FastAPI checks them (pydantic's lax mode: `"300"` is an integer, `2` is not a string).

Decisions where the seeds are vague (README "AIGE API"):
- `avatar_id` may be left out of `POST /avatar`: the service then makes one (`avatar-<32 hex>`); on the PUTs it
  may be left out too, and when present must equal the path's (else 400 `avatar_id_mismatch`).
- `writeUrl`/`readUrl` are optional: without `writeUrl` nothing is uploaded, the result stays with the task. When
  given they must be http(s) URLs with a host (else 422 `validation_error`).
- The overlay's `aspect_ratio` takes both seeds' values (000: `1:1`...; 001: fal's `square_hd`...); its default
  is seed 000's `1:1`. `position` defaults to the background's top-left corner at scale 1.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from boothbridge.tasks.model import delivery_url, storable

AvatarRatio = Literal["1:1", "16:9", "9:16", "3:4", "4:3"]
OverlayRatio = Literal[
    "1:1",
    "16:9",
    "9:16",
    "3:4",
    "4:3",
    "square_hd",
    "square",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
]
ReframeRatio = Literal["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"]
RefineRatio = Literal["1:1", "16:9", "9:16", "4:3", "3:2", "2:3", "3:4", "21:9", "9:21"]
UltraRatio = Literal["21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"]
SafetyTolerance = Literal["1", "2", "3", "4", "5", "6"]
ImageFormat = Literal["jpeg", "png"]
# The Real-ESRGAN weights fal's upscaler offers (fal-ai/esrgan, its `model` field).
UpscaleModel = Literal[
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "RealESRGAN_x4_v3",
    "RealESRGAN_x4_wdn_v3",
    "RealESRGAN_x4_anime_v3",
]

MAX_TEXT = 4000  # characters of a prompt
MAX_REF = 16_000_000  # characters of one image reference: a URL, or an image inline as base64 (≈ 12 MB)


class _Body(BaseModel):
    """A seed request body: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


class Delivered(_Body):
    """The fields every avatar endpoint shares: where to upload the result and the avatar it belongs to."""

    writeUrl: str | None = Field(default=None, min_length=1, max_length=4096)
    readUrl: str | None = Field(default=None, min_length=1, max_length=4096)
    avatar_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("writeUrl", "readUrl")
    @classmethod
    def _delivery_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host (`tasks.model.delivery_url`): 422 `validation_error` otherwise."""
        return None if value is None else delivery_url(value)

    @field_validator("avatar_id")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        """Kept with the task (`client_ref`): no NUL character or unpaired surrogate."""
        return storable(value)


class AvatarRequest(Delivered):
    """`POST /avatar`: an avatar from one to four photos of a person (URLs or base64) and a prompt (the fal
    `avatar` operation takes the photo and up to three reference photos)."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    source_images: list[str] = Field(min_length=1, max_length=1 + 3)
    aspect_ratio: AvatarRatio = "1:1"


class BackgroundRequest(Delivered):
    """`PUT /avatar/{avatar_id}/background`: a background from a prompt (text to image)."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    aspect_ratio: AvatarRatio = "1:1"


class Position(_Body):
    """Where the person goes on the background: its top-left corner at (x, y) in background pixels, scaled by
    `scale` (1 = the person image's own pixels)."""

    x: float = Field(default=0, ge=-20000, le=20000)
    y: float = Field(default=0, ge=-20000, le=20000)
    scale: float = Field(default=1, gt=0, le=10)


class OverlayParams(_Body):
    """The overlay's images (URLs, or base64) and the person's position."""

    person: str = Field(min_length=1, max_length=MAX_REF)
    background: str = Field(min_length=1, max_length=MAX_REF)
    position: Position = Field(default_factory=Position)


class OverlayRequest(Delivered):
    """`PUT /avatar/{avatar_id}/overlay`: the person over the background (offline composite, no model; `prompt`
    is accepted and recorded, not used), cropped to `aspect_ratio`."""

    prompt: str | None = Field(default=None, max_length=MAX_TEXT)
    aspect_ratio: OverlayRatio = "1:1"
    params: OverlayParams


class UpscaleRequest(Delivered):
    """`PUT /avatar/{avatar_id}/upscaled`: Real-ESRGAN upscale of `image_url` by `scale`."""

    image_url: str = Field(min_length=1, max_length=MAX_REF)
    scale: float = Field(default=2, ge=1, le=8)
    model: UpscaleModel = "RealESRGAN_x4plus"
    output_format: ImageFormat = "png"


class VideoRequest(Delivered):
    """`PUT /avatar/{avatar_id}/video`: a video (Kling) from `input_img` and a prompt."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    input_img: str = Field(min_length=1, max_length=MAX_REF)
    duration: Literal["5", "10"] = "5"
    negative_prompt: str = Field(default="blur, distort, and low quality", max_length=2000)
    cfg_scale: float = Field(default=0.5, ge=0, le=1)


class ReframeRequest(Delivered):
    """`PUT /avatar/{avatar_id}/reframe`: `image_url` reframed by AI to `aspect_ratio` (the grid and box fields
    are passed on when given)."""

    image_url: str = Field(min_length=1, max_length=MAX_REF)
    aspect_ratio: ReframeRatio = "16:9"
    prompt: str | None = Field(default=None, max_length=2000)
    grid_position_x: int | None = Field(default=None, ge=0, le=20000)
    grid_position_y: int | None = Field(default=None, ge=0, le=20000)
    x_end: int | None = Field(default=None, ge=0, le=20000)
    x_start: int | None = Field(default=None, ge=0, le=20000)
    y_end: int | None = Field(default=None, ge=0, le=20000)
    y_start: int | None = Field(default=None, ge=0, le=20000)


class RefineRequest(Delivered):
    """`PUT /avatar/{avatar_id}/refine`: an edit of `image_url` by FLUX.1 Kontext Max."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    image_url: str = Field(min_length=1, max_length=MAX_REF)
    aspect_ratio: RefineRatio = "1:1"
    guidance_scale: float = Field(default=3.5, ge=1, le=20)
    num_images: int = Field(default=1, ge=1, le=4)
    safety_tolerance: SafetyTolerance = "2"
    output_format: ImageFormat = "jpeg"
    seed: int | None = Field(default=None, ge=0)


class FinetuneRequest(_Body):
    """`POST /finetune`: a FLUX.1 Pro fine-tune on the images at `data_url` (a zip archive)."""

    data_url: str = Field(min_length=1, max_length=4000)
    finetune_comment: str | None = Field(default=None, max_length=500)
    mode: Literal["character", "product", "style", "general"] = "character"
    trigger_word: str = Field(default="TOM4S", min_length=1, max_length=100)
    iterations: int = Field(default=300, ge=100, le=5000)
    priority: Literal["speed", "quality", "high_res_only"] = "quality"
    captioning: bool = True
    lora_rank: Literal[16, 32] = 32
    finetune_type: Literal["full", "lora"] = "full"


class FluxUltraRequest(_Body):
    """`POST /flux-ultra`: FLUX1.1 Pro Ultra images from a prompt with a fine-tune (`finetune_id` from
    `GET /finetune/result/{id}`) at `finetune_strength`."""

    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    finetune_id: str = Field(min_length=1, max_length=200)
    aspect_ratio: UltraRatio = "1:1"
    output_format: ImageFormat = "jpeg"
    num_images: int = Field(default=1, ge=1, le=4)
    safety_tolerance: SafetyTolerance = "2"
    seed: int | None = Field(default=None, ge=0)
    finetune_strength: float = Field(ge=0, le=1)


# ---- answers (seeds 000/001 "Response Body") -------------------------------------------------------------------


class AvatarTask(BaseModel):
    """The avatar endpoints' answer: the task to poll and the avatar it belongs to."""

    aige_task_id: str
    avatar_id: str


class TaskStatus(BaseModel):
    """`GET /task/{aige_task_id}/status`: pending, processing_<model>, uploading_image / uploading_video, done or
    error."""

    aige_task_id: str
    status: str


class FinetuneId(BaseModel):
    """`POST /finetune` (our task id, to poll) and `GET /finetune/result/{id}` (fal's fine-tune id, for
    `POST /flux-ultra`)."""

    finetune_id: str


class UltraStarted(BaseModel):
    """`POST /flux-ultra`: the id to poll `GET /flux-ultra/result/{request_id}` with (our task id)."""

    request_id: str


class UltraImage(BaseModel):
    url: str = Field(description="a temporary public link to the image (PUBLIC_LINK_TTL_SEC)")
    width: int
    height: int
    content_type: str


class UltraResult(BaseModel):
    """`GET /flux-ultra/result/{request_id}`: fal's result shape, the images at our temporary public links."""

    images: list[UltraImage]
    timings: dict[str, Any]
    seed: int | None
    has_nsfw_concepts: list[bool]
    prompt: str | None
