"""AIGE endpoints as tasks: which provider operation each runs, its settings (valid against the catalog's schema,
whose defaults are the seeds'), its input images, the phase names and `client_ref`; the avatar id rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from boothbridge.aige import mapping, models
from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.tasks.model import InputRef, TaskSpec

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")
URL = "https://bucket.example/person.png?X-Amz-Signature=abc"
URL2 = "https://bucket.example/background.png"
B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
DELIVERY = {"writeUrl": "https://bucket.example/out?sig=w", "readUrl": "https://bucket.example/out?sig=r"}


def assert_valid(spec: TaskSpec) -> None:
    """Every step names an operation its provider offers, with settings its schema accepts, and only inputs that
    are that operation's media fields."""
    for step in spec.steps:
        assert CATALOG.supports(step.provider_id, step.operation_id)
        # Each input becomes its setting's media id when the task is submitted.
        with_media = {**step.settings, **dict.fromkeys(step.inputs, "0b7c2a5e-6b1f-4c8b-9e1a-2f3d4c5b6a7e")}
        assert CATALOG.validate_settings(step.operation_id, with_media) == []
        assert set(step.inputs) <= set(CATALOG.operations[step.operation_id].media_fields())
    assert spec.api == "aige"


def defaults(operation: str) -> dict[str, Any]:
    props = CATALOG.operations[operation].settings_schema["properties"]
    return {name: prop["default"] for name, prop in props.items() if "default" in prop}


def test_avatar_runs_the_avatar_model_then_background_removal() -> None:
    body = models.AvatarRequest.model_validate({"prompt": "a knight", "source_images": [URL, B64], **DELIVERY})
    spec = mapping.avatar_task(body, "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "avatar"), ("fal", "remove_background")]
    assert spec.steps[0].settings == {"prompt": "a knight", "aspect_ratio": "1:1"}
    assert spec.source == InputRef(url=URL)
    assert spec.steps[0].inputs == {"reference_media_id": InputRef(base64=B64)}
    assert spec.phase_names == {
        "avatar": "processing_avatar_model",
        "remove_background": "processing_background_removal",
    }
    assert spec.client_ref == {"endpoint": "avatar", "avatar_id": "av-1"}
    assert (spec.write_url, spec.read_url) == (DELIVERY["writeUrl"], DELIVERY["readUrl"])


def test_avatar_from_four_photos_sends_three_references_in_order() -> None:
    images = [URL, B64, "https://h/second.jpg", f"data:image/png;base64,{B64}"]
    spec = mapping.avatar_task(models.AvatarRequest.model_validate({"prompt": "p", "source_images": images}), "a")
    assert_valid(spec)
    assert spec.source == InputRef(url=URL)
    assert spec.steps[0].inputs == {
        "reference_media_id": InputRef(base64=B64),
        "reference_2_media_id": InputRef(url="https://h/second.jpg"),
        "reference_3_media_id": InputRef(base64=f"data:image/png;base64,{B64}"),
    }


def test_avatar_takes_at_most_four_photos() -> None:
    with pytest.raises(ValidationError):
        models.AvatarRequest.model_validate({"prompt": "p", "source_images": [URL] * 5})


def test_avatar_from_one_base64_image_has_no_reference() -> None:
    spec = mapping.avatar_task(models.AvatarRequest.model_validate({"prompt": "p", "source_images": [B64]}), "a")
    assert spec.source == InputRef(base64=B64)
    assert spec.steps[0].inputs == {}
    assert spec.write_url is None


def test_data_uri_is_base64() -> None:
    spec = mapping.avatar_task(
        models.AvatarRequest.model_validate({"prompt": "p", "source_images": [f"data:image/png;base64,{B64}"]}), "a"
    )
    assert spec.source == InputRef(base64=f"data:image/png;base64,{B64}")


@pytest.mark.parametrize("value", ["ftp://host/a.png", "file:///etc/passwd", "s3://bucket/key"])
def test_other_url_schemes_are_refused_at_their_field(value: str) -> None:
    body = models.AvatarRequest.model_validate({"prompt": "p", "source_images": [URL, value]})
    with pytest.raises(AppError) as caught:
        mapping.avatar_task(body, "a")
    assert (caught.value.status, caught.value.code) == (422, "validation_error")
    assert caught.value.details["fields"][0]["field"] == "source_images.1"


def test_too_long_url_is_refused() -> None:
    body = models.UpscaleRequest.model_validate({"image_url": "https://h/" + "a" * 5000})
    with pytest.raises(AppError) as caught:
        mapping.upscale_task(body, "a")
    assert caught.value.status == 422 and caught.value.details["fields"][0]["field"] == "image_url"


def test_background_is_text_to_image() -> None:
    body = models.BackgroundRequest.model_validate({"prompt": "a beach", "aspect_ratio": "16:9", **DELIVERY})
    spec = mapping.background_task(body, "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "generate")]
    assert spec.steps[0].settings == {"prompt": "a beach", "aspect_ratio": "16:9"}
    assert spec.source is None
    assert spec.phase_names == {"generate": "processing_background_model"}


@pytest.mark.parametrize("ratio", ["1:1", "landscape_16_9", "portrait_4_3", "square_hd"])
def test_overlay_is_the_local_composite(ratio: str) -> None:
    body = models.OverlayRequest.model_validate(
        {
            "prompt": "ignored",
            "aspect_ratio": ratio,
            "params": {"person": URL, "background": URL2, "position": {"x": 10.6, "y": -3.2, "scale": 0.5}},
        }
    )
    spec = mapping.overlay_task(body, "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("local", "overlay")]
    step = spec.steps[0]
    assert step.settings == {"x": 11, "y": -3, "scale": 0.5, "aspect_ratio": ratio, "output": {"format": "png"}}
    assert spec.source == InputRef(url=URL)
    assert step.inputs == {"background_media_id": InputRef(url=URL2)}
    assert spec.phase_names == {"overlay": "processing_overlay_model"}


def test_upscale_takes_the_seed_defaults() -> None:
    spec = mapping.upscale_task(models.UpscaleRequest.model_validate({"image_url": URL}), "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "upscale")]
    assert spec.steps[0].settings == {"scale": 2, "model": "RealESRGAN_x4plus", "output_format": "png"}
    assert {k: v for k, v in defaults("upscale").items() if k in spec.steps[0].settings} == spec.steps[0].settings
    assert spec.source == InputRef(url=URL)
    assert spec.phase_names == {"upscale": "processing_upscale"}


def test_video_is_kling_image_to_video() -> None:
    spec = mapping.video_task(models.VideoRequest.model_validate({"prompt": "wave", "input_img": URL}), "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "image_to_video")]
    assert spec.steps[0].settings == {
        "prompt": "wave",
        "duration": "5",
        "negative_prompt": "blur, distort, and low quality",
        "cfg_scale": 0.5,
    }
    assert spec.phase_names == {"image_to_video": "processing_video"}


def test_reframe_passes_only_the_given_fields() -> None:
    body = models.ReframeRequest.model_validate({"image_url": URL, "x_start": 0, "x_end": 100, "prompt": ""})
    spec = mapping.reframe_task(body, "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "reframe")]
    assert spec.steps[0].settings == {"aspect_ratio": "16:9", "x_start": 0, "x_end": 100}
    assert spec.phase_names == {"reframe": "processing_reframe_model"}


def test_refine_is_kontext_edit() -> None:
    body = models.RefineRequest.model_validate({"prompt": "smile", "image_url": URL, "seed": 7, "num_images": 2})
    spec = mapping.refine_task(body, "av-1")
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "edit")]
    assert spec.steps[0].settings == {
        "prompt": "smile",
        "aspect_ratio": "1:1",
        "guidance_scale": 3.5,
        "num_images": 2,
        "safety_tolerance": "2",
        "output_format": "jpeg",
        "seed": 7,
    }
    assert spec.phase_names == {"edit": "processing_refine_model"}


def test_finetune_sends_every_seed_field() -> None:
    body = models.FinetuneRequest.model_validate({"data_url": "https://bucket.example/train.zip"})
    spec = mapping.finetune_task(body)
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "finetune")]
    assert spec.steps[0].settings == {
        "data_url": "https://bucket.example/train.zip",
        "mode": "character",
        "trigger_word": "TOM4S",
        "iterations": 300,
        "priority": "quality",
        "captioning": True,
        "lora_rank": 32,
        "finetune_type": "full",
    }
    assert spec.source is None and spec.client_ref == {"endpoint": "finetune"}


def test_flux_ultra_uses_the_finetune() -> None:
    body = models.FluxUltraRequest.model_validate(
        {"prompt": "TOM4S rides", "finetune_id": "ft-9", "finetune_strength": 0.8, "num_images": 2}
    )
    spec = mapping.flux_ultra_task(body)
    assert_valid(spec)
    assert [(s.provider_id, s.operation_id) for s in spec.steps] == [("fal", "generate_finetuned")]
    assert spec.steps[0].settings == {
        "prompt": "TOM4S rides",
        "finetune_id": "ft-9",
        "aspect_ratio": "1:1",
        "output_format": "jpeg",
        "num_images": 2,
        "safety_tolerance": "2",
        "finetune_strength": 0.8,
    }
    assert spec.client_ref == {"endpoint": "flux-ultra"}


@pytest.mark.parametrize(
    ("operation", "body_defaults"),
    [
        ("edit", models.RefineRequest.model_validate({"prompt": "p", "image_url": URL}).model_dump()),
        ("image_to_video", models.VideoRequest.model_validate({"prompt": "p", "input_img": URL}).model_dump()),
        ("finetune", models.FinetuneRequest.model_validate({"data_url": "https://d"}).model_dump()),
    ],
)
def test_seed_defaults_equal_the_catalogs(operation: str, body_defaults: dict[str, Any]) -> None:
    catalog = defaults(operation)
    shared = set(catalog) & set(body_defaults) - {"prompt", "finetune_comment", "output"}
    assert shared
    assert {k: body_defaults[k] for k in shared} == {k: catalog[k] for k in shared}


def test_avatar_id_must_match_the_path() -> None:
    assert mapping.avatar_id_for("av-1", None) == "av-1"
    assert mapping.avatar_id_for("av-1", "av-1") == "av-1"
    with pytest.raises(AppError) as caught:
        mapping.avatar_id_for("av-1", "av-2")
    assert (caught.value.status, caught.value.code) == (400, "avatar_id_mismatch")
    assert caught.value.details == {"path_avatar_id": "av-1", "body_avatar_id": "av-2"}


@pytest.mark.parametrize(
    ("endpoint", "engine_input", "field"),
    [
        ("avatar", "source", "source_images.0"),
        ("avatar", "steps/0/inputs/reference_media_id", "source_images.1"),
        ("avatar", "steps/0/inputs/reference_3_media_id", "source_images.3"),
        ("overlay", "source", "params.person"),
        ("overlay", "steps/0/inputs/background_media_id", "params.background"),
        ("upscaled", "source", "image_url"),
        ("video", "source", "input_img"),
        ("reframe", "source", "image_url"),
        ("refine", "source", "image_url"),
    ],
)
def test_input_errors_name_the_aige_field(endpoint: str, engine_input: str, field: str) -> None:
    err = AppError(415, "input_not_image", "not an image", {"input": engine_input})
    assert mapping.with_aige_field(err, endpoint).details == {"input": engine_input, "field": field}


def test_other_errors_are_left_as_they_are() -> None:
    err = AppError(422, "invalid_settings", "bad", {"fields": []})
    assert mapping.with_aige_field(err, "avatar").details == {"fields": []}
