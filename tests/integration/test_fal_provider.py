"""The fal adapter against the fal fake over real HTTP (no database): every operation by polling, keys rested on 429,
5xx and failed requests typed, result files fetched again (never generated again), resume, cancel, and the
webhook signature check (signed, forged, unsigned, stale)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from boothbridge.catalog import Catalog
from boothbridge.providers.base import ImageInput, ProviderData, ProviderError, ProviderParked, ProviderRequest
from boothbridge.providers.fal.adapter import FalProvider
from boothbridge.settings import Settings
from local.fakes.fal_server import FakeFal
from tests.support.booth import jpeg

KEY_A, KEY_B = "fal-key-a", "fal-key-b"
CATALOG = Catalog.load(Path("configs/providers.json"))


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    fake = FakeFal((KEY_A, KEY_B), rounds=2).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def provider(fal: FakeFal) -> AsyncIterator[FalProvider]:
    settings = Settings(fal_key=f"{KEY_A},{KEY_B}", fal_queue_url=fal.url, fal_jwks_url=fal.jwks_url)
    adapter = FalProvider(settings, CATALOG)
    adapter.poll_interval_sec = 0.02
    adapter.fetcher.backoff_sec = adapter.fetcher.backoff_max_sec = 0.02
    adapter.fetcher.min_try_sec = 0.05
    try:
        yield adapter
    finally:
        await adapter.close()


def request(operation: str, settings: dict[str, Any], photo: bytes | None = None, **extra: Any) -> ProviderRequest:
    source = ImageInput(photo, "image/jpeg") if photo is not None else None
    return ProviderRequest("job-1", 1, operation, settings, source, timeout_sec=20.0, **extra)


CASES: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("remove_background", {}, "fal-ai/birefnet", {}),
    ("upscale", {"scale": 3}, "fal-ai/esrgan", {"scale": 3, "model": "RealESRGAN_x4plus", "output_format": "png"}),
    (
        "reframe",
        {"aspect_ratio": "16:9", "prompt": "a beach"},
        "fal-ai/luma-photon/reframe",
        {"aspect_ratio": "16:9", "prompt": "a beach"},
    ),
    (
        "edit",
        {"prompt": "make it night", "num_images": 2},
        "fal-ai/flux-pro/kontext/max",
        {
            "prompt": "make it night",
            "num_images": 2,
            "guidance_scale": 3.5,
            "safety_tolerance": "2",
            "output_format": "jpeg",
            "aspect_ratio": "1:1",
        },
    ),
    ("avatar", {"prompt": "as an astronaut"}, "fal-ai/flux-pro/kontext/max/multi", {"prompt": "as an astronaut"}),
    ("generate", {"prompt": "a ballroom"}, "fal-ai/flux-pro/v1.1-ultra", {"prompt": "a ballroom"}),
    (
        "generate_finetuned",
        {"prompt": "TOM4S smiling", "finetune_id": "ft-1", "finetune_strength": 0.5},
        "fal-ai/flux-pro/v1.1-ultra-finetuned",
        {"finetune_id": "ft-1", "finetune_strength": 0.5},
    ),
    (
        "image_to_video",
        {"prompt": "waves", "duration": "10"},
        "fal-ai/kling-video/v1.6/pro/image-to-video",
        {"duration": "10", "cfg_scale": 0.5, "negative_prompt": "blur, distort, and low quality"},
    ),
]


@pytest.mark.parametrize(("operation", "settings", "model", "sent"), CASES)
async def test_each_operation_by_polling(
    provider: FalProvider, fal: FakeFal, operation: str, settings: dict[str, Any], model: str, sent: dict[str, Any]
) -> None:
    photo = None if operation in ("generate", "generate_finetuned") else jpeg(120, 80)
    result = await provider.run(request(operation, settings, photo))

    [submit] = fal.submits()
    assert submit.path == f"/{model}" and submit.key == KEY_A
    assert sent.items() <= submit.body.items()
    if photo is not None:  # no public address: the photo travels as a data URI
        images = submit.body.get("image_url") or submit.body["image_urls"][0]
        assert images.startswith("data:image/jpeg;base64,")
    assert not isinstance(result, (ProviderParked, ProviderData))
    entry = fal.entry(next(iter(fal._entries)))
    polled = [c.path for c in fal.calls if c.method == "GET"]
    assert f"/{entry.app}/requests/{entry.id}/status" in polled  # under the app id, not the sub-path
    if operation == "image_to_video":
        assert result.image.mime == "video/mp4" and result.cost == pytest.approx(0.95)
        return
    img = Image.open(io.BytesIO(result.image.data))
    if operation == "remove_background":
        assert img.mode == "RGBA" and img.getpixel((0, 0))[3] == 0 and img.getpixel((60, 40))[3] == 255
    if operation == "upscale":
        assert img.size == (360, 240)
    if operation == "edit":
        assert len(result.extra) == 1 and result.cost == pytest.approx(0.16)
        assert result.data is not None and result.data["seed"] == 42


async def test_finetune_answers_a_record(provider: FalProvider, fal: FakeFal) -> None:
    result = await provider.run(request("finetune", {"data_url": "https://example.com/photos.zip"}))
    assert isinstance(result, ProviderData)
    assert result.data["finetune_id"].startswith("ft-") and result.cost == 2.0
    [submit] = fal.submits()
    assert submit.body["trigger_word"] == "TOM4S" and submit.body["iterations"] == 300


async def test_429_rests_the_key_and_the_next_key_serves(provider: FalProvider, fal: FakeFal) -> None:
    fal.rate_limited_keys = {KEY_A}
    await provider.run(request("remove_background", {}, jpeg()))
    assert [c.key for c in fal.submits()] == [KEY_A, KEY_B]
    fal.rate_limited_keys = {KEY_A, KEY_B}
    with pytest.raises(ProviderError) as err:
        await provider.run(request("remove_background", {}, jpeg()))
    assert err.value.code == "rate_limited" and err.value.retryable


async def test_5xx_is_retryable_and_a_failed_request_is_not(provider: FalProvider, fal: FakeFal) -> None:
    fal.submit_failures = 1
    with pytest.raises(ProviderError) as err:
        await provider.run(request("remove_background", {}, jpeg()))
    assert (err.value.code, err.value.retryable) == ("provider_unavailable", True)
    fal.error_result = True
    with pytest.raises(ProviderError) as err:
        await provider.run(request("remove_background", {}, jpeg()))
    assert (err.value.code, err.value.retryable) == ("provider_rejected", False)
    assert "fake was told to fail" in err.value.message


async def test_a_result_file_not_ready_is_fetched_again_without_a_second_submit(
    provider: FalProvider, fal: FakeFal
) -> None:
    fal.file_faults = 1
    result = await provider.run(request("remove_background", {}, jpeg()))
    assert result is not None and len(fal.submits()) == 1
    assert [status for _, status in fal.file_gets] == [404, 200]


async def test_a_resumed_request_is_polled_not_submitted(provider: FalProvider, fal: FakeFal) -> None:
    parked = await provider.run(request("upscale", {}, jpeg(), webhook_url="http://127.0.0.1:9/never"))
    assert isinstance(parked, ProviderParked)
    result = await provider.run(request("upscale", {}, jpeg(), resume_ref=parked.provider_ref))
    assert not isinstance(result, (ProviderParked, ProviderData)) and len(fal.submits()) == 1
    with pytest.raises(ProviderError) as err:
        await provider.run(request("upscale", {}, jpeg(), resume_ref="unknown-request"))
    assert err.value.code == "provider_request_lost"


async def test_cancel_puts_to_the_cancel_url(provider: FalProvider, fal: FakeFal) -> None:
    fal.webhook = "never"
    parked = await provider.run(request("reframe", {"aspect_ratio": "1:1"}, jpeg(), webhook_url="http://x/y"))
    assert isinstance(parked, ProviderParked)
    assert await provider.cancel(parked.provider_ref, "reframe", {"aspect_ratio": "1:1"}) == "CANCELLATION_REQUESTED"
    assert fal.cancels == [parked.provider_ref]
    cancel = next(c for c in fal.calls if c.method == "PUT")
    assert cancel.path == f"/fal-ai/luma-photon/requests/{parked.provider_ref}/cancel"


async def test_webhook_signatures(provider: FalProvider, fal: FakeFal) -> None:
    body = json.dumps({"request_id": "r1", "status": "OK", "payload": {}}).encode()
    headers = {k.lower(): v for k, v in fal.sign("r1", body).items()}
    await provider.verify_callback(headers, body)  # fal's own signature passes

    forged = dict(headers, **{"x-fal-webhook-signature": "00" * 64})
    stale = {k.lower(): v for k, v in fal.sign("r1", body, at=int(time.time()) - 600).items()}
    for bad_headers, bad_body in [(forged, body), ({}, body), (stale, body), (headers, body + b" ")]:
        with pytest.raises(ProviderError) as err:
            await provider.verify_callback(bad_headers, bad_body)
        assert err.value.code == "callback_unverified"
