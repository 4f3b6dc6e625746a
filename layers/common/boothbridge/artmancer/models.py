"""ArtMancer's request and response bodies (seed 002, "Models & Schemas" and each endpoint's JSON), field for field:
the seed's names, ranges and defaults. Unknown fields are ignored (a FastAPI app's default, as ArtMancer's was);
a value out of range, of the wrong type, or a missing required field is 400 `validation_error` (the house's
answer to a bad body, `details.fields` naming each field). Types are JSON's, strictly: a number is a JSON number
(an integer field takes 5 or 5.0, not 5.5), never a numeric string such as "512" or a boolean; a boolean is
true or false, never "true" or 1.

Images are base64, plain or a `data:` URI (the seed says base64); their size is judged by the task engine's
input cap (413 `input_too_large`), not here. Text that PostgreSQL cannot store (a NUL character, an unpaired
surrogate) is refused with the body's other problems, before anything is stored.

Decisions where the seed is silent (README "ArtMancer API"): `task_type` is required; `prompt` is optional (the
task type says what to do; a prompt adds to it) and at most 1200 characters, `negative_prompt` at most 400, so the
prompt built for the provider fits its 2000; `input_quality` defaults to "original"; at most 8 conditional images.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, model_validator
from pydantic_core import PydanticCustomError

from boothbridge.tasks.model import storable

TaskType = Literal["insertion", "removal", "white-balance"]
GenerationStatus = Literal["queued", "processing", "done", "error", "cancelled"]

MAX_PROMPT = 1200
MAX_NEGATIVE = 400
MAX_LABEL = 200  # `angle`, `background_preset`
MAX_CONDITIONAL = 8
MAX_COORD = 100_000  # pixels: a box or point beyond any image the engine accepts


def _json_integer(value: Any) -> Any:
    """A JSON number stays for the integer check (5.0 passes as 5, 5.5 does not, as JSON Schema's `integer` and a
    slot's settings); text ("512") and booleans (Python's bool is an int) are refused."""
    if isinstance(value, str | bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, a JSON number (not text or true/false)")
    return value


# Numbers as JSON gives them (seed 002's schemas say number/integer; slot settings are as strict): an int or a
# float, never a numeric string or a boolean, which pydantic's lax mode would convert.
Number = StrictFloat
Integer = Annotated[int, BeforeValidator(_json_integer)]
# The body fields that are text, not images: checked for what PostgreSQL cannot store (they are kept with the task).
_TEXT_FIELDS = ("prompt", "negative_prompt", "angle", "background_preset", "image_id")


class _Body(BaseModel):
    """A seed request body: unknown fields are ignored; its text fields must be storable."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="after")
    def _storable(self) -> Any:
        storable({name: getattr(self, name) for name in _TEXT_FIELDS if isinstance(getattr(self, name, None), str)})
        return self


class GenerationRequest(_Body):
    """`POST /api/generate` and `POST /api/generate/async`."""

    prompt: str | None = Field(None, max_length=MAX_PROMPT, description="the edit wanted, added to the task type's")
    input_image: str = Field(min_length=1, description="the photo (base64)")
    conditional_images: list[str] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONAL,
        description="conditional images; the first is the mask (white: the area to edit) for insertion and removal",
    )
    reference_image: str | None = Field(None, min_length=1, description="the object to insert (insertion)")
    reference_mask_R: str | None = Field(
        None, min_length=1, description="a mask of the object in reference_image (white: the object)"
    )
    width: Integer | None = Field(None, ge=256, le=2048, description="output width (px): a final resize")
    height: Integer | None = Field(None, ge=256, le=2048, description="output height (px): a final resize")
    num_inference_steps: Integer = Field(10, ge=1, le=100)
    guidance_scale: Number = Field(1.0, ge=0.5, le=20)
    true_cfg_scale: Number = Field(4.0, ge=0.5, le=15)
    negative_prompt: str | None = Field(None, max_length=MAX_NEGATIVE)
    seed: Integer | None = Field(None, ge=0, le=2**63 - 1)
    task_type: TaskType
    angle: str | None = Field(None, max_length=MAX_LABEL)
    background_preset: str | None = Field(None, max_length=MAX_LABEL)
    input_quality: Literal["resized", "original"] = "original"
    enable_flowmatch_scheduler: StrictBool = False


class SmartMaskRequest(_Body):
    """`POST /api/smart-mask`: `image` (base64) the first time, or `image_id` (the id an earlier answer gave); one of
    `bbox`, `points` or `auto_detect` says what to mask; `mask` is an optional guidance mask (base64)."""

    image: str | None = Field(None, min_length=1)
    image_id: str | None = Field(None, min_length=1, max_length=100)
    bbox: tuple[Number, Number, Number, Number] | None = Field(None, description="[x_min, y_min, x_max, y_max] (px)")
    points: list[tuple[Number, Number]] | None = Field(None, min_length=1, max_length=100, description="[[x, y], ...]")
    background_points: list[tuple[Number, Number]] | None = Field(None, min_length=1, max_length=100)
    border_adjustment: Integer = Field(0, ge=-50, le=50)
    use_blur: StrictBool = False
    auto_detect: StrictBool = False
    mask: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _what_to_mask(self) -> SmartMaskRequest:
        if (self.image is None) == (self.image_id is None):
            raise ValueError("give exactly one of image or image_id")
        if self.bbox is None and not self.points and not self.auto_detect:
            raise ValueError("give bbox, points or auto_detect=true")
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox
            if not (0 <= x0 < x1 <= MAX_COORD and 0 <= y0 < y1 <= MAX_COORD):
                raise ValueError("bbox is [x_min, y_min, x_max, y_max] with x_min < x_max, y_min < y_max, all >= 0")
        for point in (*(self.points or ()), *(self.background_points or ())):
            if not all(0 <= v <= MAX_COORD for v in point):
                raise ValueError(f"a point's coordinates are 0 to {MAX_COORD}")
        return self


class ExtractObjectRequest(_Body):
    """`POST /api/image-utils/extract-object`: the photo and its mask (white keeps, black becomes transparent), both
    base64. `border_adjustment`, `use_blur` and `blur_radius` are optional (the `local extract_object` op's)."""

    image: str = Field(min_length=1)
    mask: str = Field(min_length=1)
    border_adjustment: Integer = Field(0, ge=-50, le=50)
    use_blur: StrictBool = False
    blur_radius: Number = Field(3.0, ge=0, le=50)


# ---- answers ---------------------------------------------------------------------------------------------------


class GenerationQueued(BaseModel):
    task_id: str
    status: Literal["queued"] = "queued"
    message: str


class GenerationStatusBody(BaseModel):
    """`GET /api/generate/status/{task_id}`: progress 0..1; `current_step` of `total_steps` (the task's pipeline
    steps); `error` the reason once it failed."""

    task_id: str
    status: GenerationStatus
    progress: float
    current_step: int
    total_steps: int
    error: str | None


class GenerationResult(BaseModel):
    """`GET /api/generate/result/{task_id}` (seed 1.4, with GenerationResponse's fields)."""

    task_id: str
    status: Literal["done"] = "done"
    success: bool = True
    image: str = Field(description="the result image, base64")
    generation_time: float | None = Field(description="seconds from submission to the end")
    model_used: str
    parameters_used: dict[str, Any]
    request_id: str
    debug_info: dict[str, Any]


class GenerationCancelled(BaseModel):
    success: bool
    message: str
    task_id: str


class SmartMaskResponse(BaseModel):
    success: bool
    mask_base64: str | None
    image_id: str | None
    request_id: str
    error: str | None


class SmartMaskCancelled(BaseModel):
    success: bool
    message: str
    request_id: str


class ExtractObjectResponse(BaseModel):
    success: bool
    extracted_image: str | None = Field(description="a PNG with transparency, base64")
    error: str | None
