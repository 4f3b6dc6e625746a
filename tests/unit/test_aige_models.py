"""AIGE's request bodies (seeds 000/001): the seeds' field names, defaults and allowed values; unknown fields
ignored; values checked as FastAPI checks them."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import ValidationError

from boothbridge.aige import models

URL = "https://bucket.example/in.png?X-Amz-Signature=abc"


def test_avatar_defaults_and_camel_case_urls() -> None:
    body = models.AvatarRequest.model_validate(
        {"prompt": "a knight", "source_images": [URL], "writeUrl": "https://w", "readUrl": "https://r"}
    )
    assert body.aspect_ratio == "1:1"
    assert body.avatar_id is None
    assert (body.writeUrl, body.readUrl) == ("https://w", "https://r")


@pytest.mark.parametrize("ratio", ["1:1", "16:9", "9:16", "3:4", "4:3"])
def test_avatar_and_background_take_the_seed_ratios(ratio: str) -> None:
    assert models.AvatarRequest.model_validate({"prompt": "p", "source_images": [URL], "aspect_ratio": ratio})
    assert models.BackgroundRequest.model_validate({"prompt": "p", "aspect_ratio": ratio}).aspect_ratio == ratio


@pytest.mark.parametrize("ratio", ["3:2", "21:9", "square_hd", "1:2", ""])
def test_avatar_and_background_refuse_other_ratios(ratio: str) -> None:
    with pytest.raises(ValidationError):
        models.AvatarRequest.model_validate({"prompt": "p", "source_images": [URL], "aspect_ratio": ratio})
    with pytest.raises(ValidationError):
        models.BackgroundRequest.model_validate({"prompt": "p", "aspect_ratio": ratio})


@pytest.mark.parametrize(
    "body",
    [
        {"source_images": [URL]},
        {"prompt": "", "source_images": [URL]},
        {"prompt": "p", "source_images": []},
        {"prompt": "p", "source_images": URL},
        {"prompt": "p", "source_images": [URL], "writeUrl": ""},
    ],
)
def test_avatar_refuses_missing_or_empty_fields(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        models.AvatarRequest.model_validate(body)


def test_unknown_fields_are_ignored() -> None:
    body = models.BackgroundRequest.model_validate({"prompt": "p", "colour": "blue", "nested": {"a": 1}})
    assert "colour" not in body.model_dump()


@pytest.mark.parametrize(
    "ratio",
    typing.get_args(models.OverlayRatio),
)
def test_overlay_takes_both_seeds_ratios(ratio: str) -> None:
    assert len(typing.get_args(models.OverlayRatio)) == 11  # seed 000's five and seed 001's six
    body = models.OverlayRequest.model_validate({"aspect_ratio": ratio, "params": {"person": URL, "background": URL}})
    assert body.aspect_ratio == ratio


def test_overlay_defaults() -> None:
    body = models.OverlayRequest.model_validate({"params": {"person": URL, "background": URL}})
    assert body.aspect_ratio == "1:1"
    assert body.prompt is None
    assert (body.params.position.x, body.params.position.y, body.params.position.scale) == (0, 0, 1)


@pytest.mark.parametrize(
    "params",
    [
        {"background": URL},
        {"person": URL},
        {"person": URL, "background": URL, "position": {"scale": 0}},
        {"person": URL, "background": URL, "position": {"x": "left"}},
        {"person": URL, "background": URL, "position": {"x": 30000}},
    ],
)
def test_overlay_refuses_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        models.OverlayRequest.model_validate({"params": params})


def test_overlay_refuses_an_unknown_ratio() -> None:
    with pytest.raises(ValidationError):
        models.OverlayRequest.model_validate({"aspect_ratio": "2:3", "params": {"person": URL, "background": URL}})


def test_upscale_defaults_and_values() -> None:
    body = models.UpscaleRequest.model_validate({"image_url": URL})
    assert (body.scale, body.model, body.output_format) == (2, "RealESRGAN_x4plus", "png")
    with pytest.raises(ValidationError):
        models.UpscaleRequest.model_validate({"image_url": URL, "output_format": "webp"})
    with pytest.raises(ValidationError):
        models.UpscaleRequest.model_validate({"image_url": URL, "scale": 9})


def test_video_defaults_and_duration() -> None:
    body = models.VideoRequest.model_validate({"prompt": "wave", "input_img": URL})
    assert (body.duration, body.negative_prompt, body.cfg_scale) == ("5", "blur, distort, and low quality", 0.5)
    assert models.VideoRequest.model_validate({"prompt": "w", "input_img": URL, "duration": "10"}).duration == "10"
    with pytest.raises(ValidationError):
        models.VideoRequest.model_validate({"prompt": "w", "input_img": URL, "duration": "7"})


def test_reframe_defaults_and_ratios() -> None:
    body = models.ReframeRequest.model_validate({"image_url": URL})
    assert body.aspect_ratio == "16:9"
    assert body.prompt is None and body.x_start is None
    for ratio in ("21:9", "9:21"):
        assert models.ReframeRequest.model_validate({"image_url": URL, "aspect_ratio": ratio})
    with pytest.raises(ValidationError):
        models.ReframeRequest.model_validate({"image_url": URL, "aspect_ratio": "3:2"})


def test_refine_defaults() -> None:
    body = models.RefineRequest.model_validate({"prompt": "smile", "image_url": URL})
    assert (body.aspect_ratio, body.guidance_scale, body.num_images) == ("1:1", 3.5, 1)
    assert (body.safety_tolerance, body.output_format, body.seed) == ("2", "jpeg", None)
    assert models.RefineRequest.model_validate({"prompt": "s", "image_url": URL, "aspect_ratio": "3:2"})
    with pytest.raises(ValidationError):
        models.RefineRequest.model_validate({"prompt": "s", "image_url": URL, "safety_tolerance": "7"})


def test_finetune_defaults() -> None:
    body = models.FinetuneRequest.model_validate({"data_url": "https://bucket.example/train.zip"})
    assert body.model_dump() == {
        "data_url": "https://bucket.example/train.zip",
        "finetune_comment": None,
        "mode": "character",
        "trigger_word": "TOM4S",
        "iterations": 300,
        "priority": "quality",
        "captioning": True,
        "lora_rank": 32,
        "finetune_type": "full",
    }


def test_finetune_takes_numbers_as_fastapi_does() -> None:
    body = models.FinetuneRequest.model_validate({"data_url": "https://d", "iterations": "500", "lora_rank": 16})
    assert (body.iterations, body.lora_rank) == (500, 16)
    with pytest.raises(ValidationError):
        models.FinetuneRequest.model_validate({"data_url": "https://d", "lora_rank": 64})


def test_flux_ultra_requires_strength_in_range() -> None:
    base = {"prompt": "TOM4S on a horse", "finetune_id": "ft-1"}
    with pytest.raises(ValidationError):
        models.FluxUltraRequest.model_validate(base)
    with pytest.raises(ValidationError):
        models.FluxUltraRequest.model_validate({**base, "finetune_strength": 1.5})
    body = models.FluxUltraRequest.model_validate({**base, "finetune_strength": 0.5})
    assert (body.aspect_ratio, body.output_format, body.num_images, body.safety_tolerance) == ("1:1", "jpeg", 1, "2")


def test_safety_tolerance_is_a_string_as_in_the_seed() -> None:
    base = {"prompt": "p", "finetune_id": "ft", "finetune_strength": 0.5}
    with pytest.raises(ValidationError):
        models.FluxUltraRequest.model_validate({**base, "safety_tolerance": 2})
