"""ArtMancer's requests (seed 002) as tasks: the bodies' ranges and defaults, each task type's steps, the prompt
built for the edit, the echoed parameters, smart-mask and extract-object steps, and the insertion guide's pixels."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from boothbridge.artmancer import guide, mapping, models
from boothbridge.errors import AppError
from boothbridge.tasks.model import InputRef

EDIT = mapping.EditTarget("gemini")
SECOND = InputRef(base64="bWFzaw==")


def request(**fields: Any) -> models.GenerationRequest:
    body: dict[str, Any] = {"input_image": "cGhvdG8=", "task_type": "white-balance"}
    body.update(fields)
    return models.GenerationRequest.model_validate(body)


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_defaults_are_the_seeds() -> None:
    body = request()
    assert (body.num_inference_steps, body.guidance_scale, body.true_cfg_scale) == (10, 1.0, 4.0)
    assert body.input_quality == "original" and body.enable_flowmatch_scheduler is False
    assert body.conditional_images == [] and body.width is None and body.seed is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 255),
        ("height", 2049),
        ("num_inference_steps", 0),
        ("num_inference_steps", 101),
        ("guidance_scale", 0.4),
        ("guidance_scale", 20.5),
        ("true_cfg_scale", 0.4),
        ("true_cfg_scale", 15.1),
        ("input_quality", "high"),
        ("task_type", "upscale"),
        ("seed", -1),
        ("prompt", "a\x00b"),
        ("negative_prompt", "\ud800"),
        ("angle", "x" * 201),
    ],
)
def test_values_out_of_the_seeds_ranges_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        request(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("width", 256), ("height", 2048), ("guidance_scale", 20)])
def test_the_range_ends_are_accepted(field: str, value: Any) -> None:
    assert getattr(request(**{field: value}), field) == value


def test_input_image_and_task_type_are_required() -> None:
    with pytest.raises(ValidationError):
        models.GenerationRequest.model_validate({"task_type": "removal"})
    with pytest.raises(ValidationError):
        models.GenerationRequest.model_validate({"input_image": "cGhvdG8="})


def test_white_balance_is_one_local_step_and_width_height_add_a_filling_resize() -> None:
    spec = mapping.generation_task(request(), EDIT, None, "64x48")
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("local", "white_balance")]
    assert spec.api == "artmancer" and spec.source == InputRef(base64="cGhvdG8=")
    spec = mapping.generation_task(request(width=512, height=256), EDIT, None, "64x48")
    assert [s.operation_id for s in spec.steps] == ["white_balance", "resize"]
    assert spec.steps[1].settings == {"mode": "fill", "upscale": True, "width": 512, "height": 256}
    only_width = mapping.generation_task(request(width=300), EDIT, None, None).steps[1].settings
    assert only_width == {"mode": "fit", "upscale": True, "width": 300}


def test_removal_is_the_edit_providers_combine_images_with_the_mask() -> None:
    body = request(task_type="removal", conditional_images=["bWFzaw=="], prompt="the lamp", negative_prompt="blur")
    spec = mapping.generation_task(body, mapping.EditTarget("gemini", "gemini-3-pro-image-preview"), SECOND, "8x8")
    [step] = spec.steps
    assert (step.provider_id, step.operation_id) == ("gemini", "combine_images")
    assert step.inputs == {"overlay_media_id": SECOND}
    assert step.settings["model"] == "gemini-3-pro-image-preview"
    prompt = step.settings["prompt"]
    assert prompt.startswith(mapping.REMOVAL_PROMPT) and "Request: the lamp" in prompt and "Avoid: blur" in prompt
    ref = spec.client_ref
    assert ref["endpoint"] == "generate" and ref["task_type"] == "removal" and ref["input_image_size"] == "8x8"
    assert ref["model_used"] == "gemini/combine_images (gemini-3-pro-image-preview)"
    assert ref["conditional_labels"] == ["mask"]
    assert "input_image" not in ref["parameters"] and ref["parameters"]["prompt"] == "the lamp"
    assert "seed" in ref["unused"] and "prompt" not in ref["unused"]


def test_insertion_prompt_and_its_required_images() -> None:
    body = request(task_type="insertion", conditional_images=["bWFzaw=="], reference_image="cmVm")
    step = mapping.generation_task(body, EDIT, SECOND, None).steps[0]
    assert step.settings == {"prompt": mapping.INSERTION_PROMPT}
    with pytest.raises(AppError) as err:
        mapping.check_generation(request(task_type="insertion", conditional_images=["bWFzaw=="]))
    assert (err.value.status, err.value.code) == (400, "reference_required")
    with pytest.raises(AppError) as err:
        mapping.check_generation(request(task_type="removal"))
    assert (err.value.status, err.value.code, err.value.details["field"]) == (
        400,
        "mask_required",
        "conditional_images",
    )


def test_the_longest_prompts_fit_combine_images_2000_characters() -> None:
    prompt = mapping.edit_prompt("insertion", "p" * models.MAX_PROMPT, "n" * models.MAX_NEGATIVE)
    assert len(prompt) <= 2000
    assert len(mapping.edit_prompt("removal", "p" * models.MAX_PROMPT, "n" * models.MAX_NEGATIVE)) <= 2000


def test_white_balance_names_what_it_does_not_use() -> None:
    body = request(prompt="x", conditional_images=["bWFzaw=="], angle="wide-angle")
    assert {"prompt", "conditional_images", "angle", "seed"} <= set(mapping.unused_fields(body))
    assert mapping.conditional_labels(body) == ["unused"]


def test_smart_mask_request_needs_a_target_and_exactly_one_image() -> None:
    with pytest.raises(ValidationError):
        models.SmartMaskRequest.model_validate({"image": "aW1n"})
    with pytest.raises(ValidationError):
        models.SmartMaskRequest.model_validate({"image": "aW1n", "image_id": "x", "auto_detect": True})
    with pytest.raises(ValidationError):
        models.SmartMaskRequest.model_validate({"image": "aW1n", "bbox": [10, 10, 5, 20]})
    body = models.SmartMaskRequest.model_validate(
        {"image": "aW1n", "bbox": [1.4, 2, 30, 40.6], "points": [[5, 6]], "mask": "bWFzaw==", "use_blur": True}
    )
    [step] = mapping.smart_mask_task(body, InputRef(base64="aW1n")).steps
    assert (step.provider_id, step.operation_id) == ("local", "smart_mask")
    assert step.settings == {
        "auto_detect": False,
        "border_adjustment": 0,
        "use_blur": True,
        "bbox": [1.4, 2, 30, 40.6],  # as given: the operation takes fractional pixels
        "points": [[5, 6]],
    }
    assert step.inputs == {"mask_media_id": InputRef(base64="bWFzaw==")}


def test_extract_object_is_the_local_op_with_the_mask() -> None:
    body = models.ExtractObjectRequest.model_validate({"image": "aW1n", "mask": "bWFzaw==", "use_blur": True})
    [step] = mapping.extract_object_task(body).steps
    assert step.operation_id == "extract_object" and step.inputs == {"mask_media_id": InputRef(base64="bWFzaw==")}
    assert step.settings == {"border_adjustment": 0, "use_blur": True, "blur_radius": 3.0}


def test_the_insertion_guide_places_the_reference_in_the_masks_box() -> None:
    mask = Image.new("L", (100, 50), 0)
    mask.paste(255, (60, 10, 80, 30))  # a 20 x 20 box
    reference = Image.new("RGB", (40, 20), (255, 0, 0))  # 2:1, fitted as 20 x 10, centred vertically
    made = Image.open(io.BytesIO(guide.insertion_guide(png(mask), png(reference)))).convert("RGB")
    assert made.size == (100, 50)
    assert made.getpixel((70, 20)) == (255, 0, 0)  # inside the fitted reference
    assert made.getpixel((70, 12)) == (0, 0, 0)  # in the box, above the fitted reference
    assert made.getpixel((10, 10)) == (0, 0, 0)  # outside the mask


def test_the_guide_cuts_the_reference_by_its_mask() -> None:
    mask = Image.new("L", (40, 40), 255)
    reference = Image.new("RGB", (20, 20), (0, 0, 255))
    reference.paste((0, 255, 0), (10, 0, 20, 20))
    cut = Image.new("L", (20, 20), 0)
    cut.paste(255, (10, 0, 20, 20))  # the green half is the object
    made = Image.open(io.BytesIO(guide.insertion_guide(png(mask), png(reference), png(cut)))).convert("RGB")
    assert made.getpixel((20, 20)) == (0, 255, 0)  # the object (10 x 20) fitted into 40 x 40: 20 x 40, centred
    assert made.getpixel((5, 20)) == (0, 0, 0)


def test_an_all_black_mask_is_mask_empty() -> None:
    with pytest.raises(AppError) as err:
        guide.insertion_guide(png(Image.new("L", (8, 8), 0)), png(Image.new("RGB", (8, 8))))
    assert (err.value.status, err.value.code) == (400, "mask_empty")


def test_decoded_names_the_field_of_a_bad_image() -> None:
    with pytest.raises(AppError) as err:
        guide.decoded(base64.b64encode(b"not an image").decode(), "reference_image", 1000, 10_000)
    assert (err.value.status, err.value.code, err.value.details["field"]) == (415, "input_not_image", "reference_image")
    with pytest.raises(AppError) as err:
        guide.decoded("A" * 4000, "input_image", 1000, 10_000)
    assert (err.value.status, err.value.code) == (413, "input_too_large")
