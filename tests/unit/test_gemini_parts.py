"""Gemini request planning and response reading without the network: parts, inline vs Files API, tokens,
finish reasons, error mapping and cost (the output format is the worker's image boundary)."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from google.genai import errors, types
from PIL import Image

from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest
from boothbridge.providers.gemini import wire
from tests.support.booth import jpeg, png


def image(fmt: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, fmt)
    return buf.getvalue()


def request(operation: str, settings: dict[str, Any], media: dict[str, ImageInput] | None = None) -> ProviderRequest:
    return ProviderRequest(
        job_id="j",
        attempt=1,
        operation_id=operation,
        settings=settings,
        source=ImageInput(jpeg(960, 540), "image/jpeg"),
        media=media or {},
    )


def response(body: dict[str, Any]) -> types.GenerateContentResponse:
    return types.GenerateContentResponse.model_validate(body)


def provider_error(call: Any, *args: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize(
    ("size", "tokens"),
    [((384, 384), 258), ((100, 50), 258), ((960, 540), 6 * 258), ((1024, 1024), 4 * 258), ((385, 200), 6 * 258)],
)
def test_image_tokens_follow_the_tile_formula(size: tuple[int, int], tokens: int) -> None:
    assert wire.image_tokens(*size) == tokens


def test_uploads_are_chosen_largest_first_until_the_inline_request_fits() -> None:
    assert wire.base64_size(3) == 4 and wire.base64_size(4) == 8
    assert wire.choose_uploads([5_000_000, 5_000_000], 100) == set()
    assert wire.choose_uploads([11_000_000, 12_000_000], 100) == {1}
    assert wire.choose_uploads([15_000_000, 1_000_000, 14_000_000], 100) == {0, 2}
    assert wire.choose_uploads([14_990_000], 100) == set()  # 19.99 MB once encoded: still inline
    assert wire.choose_uploads([15_000_000], 100) == {0}


def test_change_image_plan_is_the_photo_then_the_prompt() -> None:
    plan = wire.plan_call(request("change_image", {"prompt": "Add hats", "aspect_ratio": "16:9"}))
    assert [p.image.mime for p in plan.images] == ["image/jpeg"] and not plan.images[0].upload
    assert plan.prompt == "Add hats" and plan.model == wire.DEFAULT_MODEL and plan.aspect_ratio == "16:9"
    assert plan.tokens == 6 * 258 + 2  # 960x540 photo + len("Add hats") / 4
    config = wire.generation_config(plan)
    assert config.response_modalities == ["IMAGE"]
    assert config.image_config is not None and config.image_config.aspect_ratio == "16:9"


def test_style_transfer_plan_adds_the_reference_and_a_default_prompt() -> None:
    ref = ImageInput(image(), "image/png")
    plan = wire.plan_call(
        request("style_transfer", {"model": "gemini-3-pro-image-preview"}, {"reference_media_id": ref})
    )
    assert [p.image for p in plan.images][1] == ref
    assert plan.prompt == wire.DEFAULT_STYLE_PROMPT and plan.model == "gemini-3-pro-image-preview"
    assert wire.generation_config(plan).image_config is None


def test_unsupported_template_types_are_converted_to_png() -> None:
    gif = ImageInput(image("GIF"), "image/gif")
    plan = wire.plan_call(request("combine_images", {"prompt": "Merge"}, {"overlay_media_id": gif}))
    converted = plan.images[1].image
    assert converted.mime == "image/png" and Image.open(io.BytesIO(converted.data)).format == "PNG"


def test_a_small_inline_limit_sends_images_through_the_files_api() -> None:
    ref = ImageInput(png(50, 50), "image/png")
    plan = wire.plan_call(request("style_transfer", {}, {"reference_media_id": ref}), limit=10)
    assert [p.upload for p in plan.images] == [True, True]


@pytest.mark.parametrize(
    ("operation", "settings", "media", "code"),
    [
        ("change_image", {}, {}, "settings_invalid"),
        ("combine_images", {"prompt": "x"}, {}, "template_missing"),
        ("frame", {"prompt": "x"}, {}, "operation_unsupported"),
        ("style_transfer", {}, {"reference_media_id": ImageInput(b"not an image", "image/png")}, "image_undecodable"),
    ],
)
def test_bad_inputs_are_final_errors(operation: str, settings: dict[str, Any], media: Any, code: str) -> None:
    err = provider_error(wire.plan_call, request(operation, settings, media))
    assert (err.code, err.retryable) == (code, False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_first_image_part_is_returned_skipping_text_and_thoughts() -> None:
    thought, answer = image("PNG", (8, 8)), image("PNG")
    body = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "Here you go"},
                        {"inlineData": {"mimeType": "image/png", "data": b64(thought)}, "thought": True},
                        {"inlineData": {"mimeType": "image/png", "data": b64(answer)}},
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    assert wire.read_image(response(body), []) == ImageInput(answer, "image/png")


@pytest.mark.parametrize(
    ("body", "code", "retryable"),
    [
        ({"candidates": [{"content": {"parts": [{"text": "No."}]}, "finishReason": "NO_IMAGE"}]}, "no_image", True),
        ({"candidates": [{"finishReason": "STOP", "content": {"parts": []}}]}, "no_image", True),
        ({"candidates": []}, "no_image", True),
        ({"candidates": [{"finishReason": "IMAGE_SAFETY"}]}, "safety_blocked", False),
        ({"candidates": [{"finishReason": "PROHIBITED_CONTENT"}]}, "safety_blocked", False),
        ({"promptFeedback": {"blockReason": "SAFETY"}}, "safety_blocked", False),
    ],
)
def test_answers_without_an_image_are_typed(body: dict[str, Any], code: str, retryable: bool) -> None:
    err = provider_error(wire.read_image, response(body), [])
    assert (err.code, err.retryable) == (code, retryable)


def test_no_image_message_carries_the_reason_and_the_models_words_without_secrets() -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "key sk-123 refused"}]}, "finishReason": "NO_IMAGE"}]}
    err = provider_error(wire.read_image, response(body), ["sk-123"])
    assert "NO_IMAGE" in err.message and "refused" in err.message and "sk-123" not in err.message


def test_cost_uses_usage_metadata_else_the_flat_price() -> None:
    pricing = {"input_per_million_tokens": 0.3, "output_per_million_tokens": 30.0, "per_image": 0.039}
    assert wire.call_cost(pricing, 1000, 1290) == pytest.approx(0.0003 + 0.0387)
    assert wire.call_cost(pricing, 1000, None) == 0.039
    assert wire.call_cost({}, None, None) == 0.0
    body = {"usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 1290}}
    assert wire.usage(response(body)) == (1000, 1290)
    assert wire.usage(response({})) == (None, None)


def api_error(code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> errors.APIError:
    cls = errors.ClientError if code < 500 else errors.ServerError
    return cls(code, body, httpx.Response(code, headers=headers or {}, json=body))


def test_429_retry_after_comes_from_the_header_or_the_retry_info() -> None:
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}
    body = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [retry_info]}}
    err = wire.error_from_api(api_error(429, body), [])
    assert (err.code, err.retryable, err.retry_after) == ("rate_limited", True, 31.0)
    assert wire.error_from_api(api_error(429, body, {"Retry-After": "12"}), []).retry_after == 12.0
    assert wire.error_from_api(api_error(429, {"error": {"code": 429}}), []).retry_after is None


@pytest.mark.parametrize(
    ("code", "reason", "expected", "retryable"),
    [
        (400, None, "bad_request", False),
        (400, "API_KEY_INVALID", "auth_failed", False),
        (401, None, "auth_failed", False),
        (403, None, "auth_failed", False),
        (404, None, "bad_request", False),
        (500, None, "provider_unavailable", True),
        (503, None, "provider_unavailable", True),
    ],
)
def test_http_errors_map_to_codes(code: int, reason: str | None, expected: str, retryable: bool) -> None:
    error: dict[str, Any] = {"code": code, "message": "boom for key SECRET", "status": "X"}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    err = wire.error_from_api(api_error(code, {"error": error}), ["SECRET"])
    assert (err.code, err.retryable) == (expected, retryable)
    assert "boom" in err.message and "SECRET" not in err.message
