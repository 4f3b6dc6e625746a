"""The fal wire module: request bodies per operation (from the catalog), URLs (the app id rule), answer parsing,
the webhook body and the message fal signs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from boothbridge.catalog import Catalog
from boothbridge.providers.fal import wire

CATALOG = Catalog.load(Path("configs/providers.json"))


def spec(operation: str) -> wire.OperationSpec:
    op = CATALOG.operation(operation)
    assert op is not None
    return wire.operation_spec(op.provider_overrides["fal"])


def defaults(operation: str) -> dict[str, object]:
    op = CATALOG.operation(operation)
    assert op is not None
    return {k: v["default"] for k, v in op.settings_schema["properties"].items() if "default" in v}


def test_every_fal_operation_has_a_model_a_price_and_a_schema_naming_its_inputs() -> None:
    fal = CATALOG.provider("fal")
    assert fal is not None
    for operation in fal.operations:
        s = spec(operation)
        assert wire.MODEL_ID.match(s.model) and s.price
        op = CATALOG.operation(operation)
        assert op is not None
        assert set(s.inputs) <= set(op.settings_schema["properties"]), operation


def test_bodies_take_settings_then_schema_defaults_and_leave_unset_out() -> None:
    body = wire.build_input(spec("edit"), {"prompt": "night", "seed": 7}, defaults("edit"), {"image_url": "u"})
    assert body == {
        "prompt": "night",
        "aspect_ratio": "1:1",
        "guidance_scale": 3.5,
        "num_images": 1,
        "safety_tolerance": "2",
        "output_format": "jpeg",
        "seed": 7,
        "image_url": "u",
    }
    upscale = wire.build_input(spec("upscale"), {}, defaults("upscale"), {"image_url": "u"})
    assert upscale == {"scale": 2, "model": "RealESRGAN_x4plus", "output_format": "png", "image_url": "u"}
    trainer = wire.build_input(spec("finetune"), {"data_url": "https://x/z.zip"}, defaults("finetune"), {})
    assert trainer["mode"] == "character" and trainer["lora_rank"] == 32 and trainer["finetune_type"] == "full"
    video = wire.build_input(spec("image_to_video"), {"prompt": "p"}, defaults("image_to_video"), {})
    assert video["duration"] == "5" and video["cfg_scale"] == 0.5


def test_urls_use_the_app_id_for_requests_of_a_sub_path_model() -> None:
    model = "fal-ai/luma-photon/reframe"
    assert wire.submit_url("http://q/", model, None) == "http://q/fal-ai/luma-photon/reframe"
    assert wire.submit_url("http://q", model, "http://me/hook?a=1").endswith(
        "?fal_webhook=http%3A%2F%2Fme%2Fhook%3Fa%3D1"
    )
    assert wire.request_url("http://q", model, "r1", "status") == "http://q/fal-ai/luma-photon/requests/r1/status"
    assert wire.request_url("http://q", model, "r1") == "http://q/fal-ai/luma-photon/requests/r1"
    with pytest.raises(wire.WireError):
        wire.model_for(spec("edit"), {"model_id": "../../admin"})


def test_answers_parse_and_bad_ones_raise() -> None:
    submitted = wire.parse_submit({"request_id": "r", "status_url": "s", "cancel_url": ""})
    assert (submitted.request_id, submitted.status_url, submitted.cancel_url) == ("r", "s", None)
    assert wire.parse_status({"status": "IN_QUEUE", "queue_position": 3}).queue_position == 3
    assert wire.parse_status({"status": "COMPLETED", "error": "boom"}).error == "boom"
    for bad in ({}, {"status": "DONE"}, []):
        with pytest.raises(wire.WireError):
            wire.parse_status(bad)
    out = wire.parse_output("images", {"images": [{"url": "a"}, {"url": "b"}], "seed": 1, "has_nsfw_concepts": [0]})
    assert out.urls == ("a", "b") and out.data == {"seed": 1, "has_nsfw_concepts": [0]}
    assert wire.parse_output("image", {"image": {"url": "a"}}).urls == ("a",)
    assert wire.parse_output("video", {"video": {"url": "v"}}, "10").seconds == 10.0
    assert wire.parse_output("finetune", {"finetune_id": "ft"}).finetune_id == "ft"
    with pytest.raises(wire.WireError):
        wire.parse_output("images", {"images": []})
    assert (
        wire.error_detail({"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]})
        == "body.prompt: field required"
    )


def test_webhook_bodies() -> None:
    ok = wire.parse_webhook({"request_id": "r", "status": "OK", "payload": {"images": []}})
    assert ok.ok and ok.payload == {"images": []}
    err = wire.parse_webhook({"request_id": "r", "status": "ERROR", "error": "Invalid status code: 422", "payload": {}})
    assert not err.ok and err.error == "Invalid status code: 422"
    unserialisable = wire.parse_webhook({"request_id": "r", "status": "OK", "payload": None, "payload_error": "x"})
    assert not unserialisable.ok and unserialisable.error == "x"
    with pytest.raises(wire.WireError):
        wire.parse_webhook({"request_id": "r", "status": "MAYBE"})


def test_the_signed_message_and_the_video_check() -> None:
    body = b'{"a":1}'
    assert wire.signature_message("r", "u", "17", body) == f"r\nu\n17\n{hashlib.sha256(body).hexdigest()}".encode()
    assert wire.is_video(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00")
    assert not wire.is_video(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00")
    assert wire.data_uri(b"ab", "image/png") == "data:image/png;base64,YWI="
