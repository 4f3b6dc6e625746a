"""Unit tests for `LocalProvider`: dispatch, catalog defaults, typed errors, off-loop execution."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from PIL import Image, ImageStat

from boothbridge.images import codec
from boothbridge.providers.base import ImageInput, Provider, ProviderError, ProviderRequest, ProviderResult
from boothbridge.providers.local.adapter import LocalProvider

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def png(img: Image.Image) -> ImageInput:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return ImageInput(data=buf.getvalue(), mime="image/png")


def jpeg(img: Image.Image) -> ImageInput:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return ImageInput(data=buf.getvalue(), mime="image/jpeg")


def request(
    operation: str,
    settings: dict[str, Any],
    source: ImageInput | None = None,
    media: dict[str, ImageInput] | None = None,
) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-1",
        attempt=1,
        operation_id=operation,
        settings=settings,
        source=source or jpeg(Image.new("RGB", (400, 200), GREEN)),
        media=media or {},
    )


def open_result(result: ProviderResult) -> Image.Image:
    img = Image.open(io.BytesIO(result.image.data))
    img.load()
    expected_format = {"image/jpeg": "JPEG", "image/png": "PNG"}[result.image.mime]
    assert img.format == expected_format
    return img


def px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at `xy` as a tuple (all test images here are multi-band)."""
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 8) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


@pytest.fixture
def provider() -> LocalProvider:
    return LocalProvider()


def test_satisfies_provider_protocol(provider: LocalProvider) -> None:
    as_protocol: Provider = provider
    assert as_protocol.id == "local"


async def test_close_is_a_no_op(provider: LocalProvider) -> None:
    await provider.close()
    await provider.close()  # idempotent: closing twice is harmless
    result = await provider.run(request("resize", {"width": 20}))  # and holds nothing that closing broke
    assert open_result(result).size == (20, 10)


async def test_reframe_defaults_to_crop_and_jpeg(provider: LocalProvider) -> None:
    result = await provider.run(request("reframe", {"aspect_ratio": "1:1"}))
    assert result.cost == 0.0
    assert result.image.mime == "image/jpeg"
    img = open_result(result)
    assert img.size == (200, 200)


async def test_reframe_pad_defaults_to_white(provider: LocalProvider) -> None:
    result = await provider.run(request("reframe", {"aspect_ratio": "1:1", "mode": "pad"}))
    img = open_result(result)
    assert img.size == (400, 400)
    assert close_to(px(img, (5, 5)), WHITE)
    assert close_to(px(img, (200, 200)), GREEN)


async def test_reframe_pad_colour_and_png_output(provider: LocalProvider) -> None:
    settings = {"aspect_ratio": "9:16", "mode": "pad", "pad_color": "#0000ff", "output": {"format": "png"}}
    result = await provider.run(request("reframe", settings, source=png(Image.new("RGB", (90, 90), RED))))
    assert result.image.mime == "image/png"
    img = open_result(result)
    assert img.size == (90, 160)
    assert px(img, (45, 0)) == BLUE
    assert px(img, (45, 80)) == RED


async def test_default_quality_is_92(provider: LocalProvider) -> None:
    gradient = Image.linear_gradient("L").resize((200, 200)).convert("RGB")
    source = png(gradient)
    default = await provider.run(request("white_balance", {"strength": 0}, source=source))
    explicit = await provider.run(request("white_balance", {"strength": 0, "output": {"quality": 92}}, source))
    lower = await provider.run(request("white_balance", {"strength": 0, "output": {"quality": 40}}, source))
    assert default.image.data == explicit.image.data
    assert lower.image.data != default.image.data


async def test_frame_uses_template_and_defaults(provider: LocalProvider) -> None:
    template = Image.new("RGBA", (120, 100), (*BLUE, 255))
    template.paste((0, 0, 0, 0), (0, 0, 50, 50))  # the window is at the top-left, where x=y=0 puts the photo
    source = png(Image.new("RGB", (60, 60), RED))
    result = await provider.run(request("frame", {}, source=source, media={"template_media_id": png(template)}))
    assert result.image.mime == "image/jpeg"
    img = open_result(result)
    assert img.size == (120, 100)
    assert close_to(px(img, (20, 20)), RED)
    assert close_to(px(img, (90, 80)), BLUE)
    assert close_to(px(img, (55, 20)), BLUE)  # scale 1: photo reaches x=59 but the template covers it


async def test_frame_position_and_scale(provider: LocalProvider) -> None:
    template = Image.new("RGBA", (200, 200), (*BLUE, 255))
    template.paste((0, 0, 0, 0), (100, 100, 200, 200))
    settings = {"x": 100, "y": 100, "scale": 2.5, "output": {"format": "png"}}
    source = png(Image.new("RGB", (40, 40), RED))
    result = await provider.run(request("frame", settings, source, {"template_media_id": png(template)}))
    img = open_result(result)
    assert px(img, (150, 150)) == RED
    assert px(img, (195, 195)) == RED
    assert px(img, (50, 150)) == BLUE


async def test_white_balance_defaults_to_full_strength(provider: LocalProvider) -> None:
    cast = Image.new("RGB", (64, 64), (180, 110, 90))
    cast.paste((120, 70, 50), (0, 0, 32, 64))
    before = ImageStat.Stat(cast).mean
    assert max(before) - min(before) > 60
    img = open_result(await provider.run(request("white_balance", {}, source=png(cast))))
    means = ImageStat.Stat(img).mean
    assert max(means) - min(means) < 3


async def test_resize_defaults_to_fit_with_upscale(provider: LocalProvider) -> None:
    img = open_result(await provider.run(request("resize", {"width": 800, "height": 800})))
    assert img.size == (800, 400)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"width": 100, "height": 100, "mode": "fill"}, (100, 100)),
        ({"width": 100, "height": 100, "mode": "stretch"}, (100, 100)),
        ({"height": 50}, (100, 50)),
        ({"width": 800, "upscale": False}, (400, 200)),
    ],
)
async def test_resize_settings(provider: LocalProvider, settings: dict[str, Any], expected: tuple[int, int]) -> None:
    assert open_result(await provider.run(request("resize", settings))).size == expected


async def test_runs_pillow_work_off_the_event_loop_thread(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_encode = codec.encode

    def spy(img: Image.Image, fmt: str, quality: int) -> tuple[bytes, str]:
        threads.append(threading.get_ident())
        return real_encode(img, fmt, quality)

    monkeypatch.setattr(codec, "encode", spy)
    # A PNG: Pillow's path (a JPEG's resize goes through libvips, checked below).
    await provider.run(request("resize", {"width": 20}, png(Image.new("RGB", (400, 200), GREEN))))
    assert threads and threads[0] != threading.get_ident()


async def test_runs_libvips_work_off_the_event_loop_thread(
    provider: LocalProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_marker = codec.encoded_here

    def spy(data: bytes, mime: str, size: tuple[int, int]) -> codec.EncodedHere:
        threads.append(threading.get_ident())
        return real_marker(data, mime, size)

    monkeypatch.setattr(codec, "encoded_here", spy)
    await provider.run(request("resize", {"width": 20}))
    assert threads and threads[0] != threading.get_ident()


async def test_unknown_operation_is_unsupported(provider: LocalProvider) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.run(request("cartoonify", {}))
    assert info.value.code == "operation_unsupported"
    assert info.value.retryable is False


async def test_frame_without_template_is_template_missing(provider: LocalProvider) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.run(request("frame", {"x": 1}))
    assert info.value.code == "template_missing"
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("operation", "settings"),
    [("reframe", {"aspect_ratio": "1:1"}), ("frame", {}), ("white_balance", {}), ("resize", {"width": 10})],
)
async def test_undecodable_photo(provider: LocalProvider, operation: str, settings: dict[str, Any]) -> None:
    media = {"template_media_id": png(Image.new("RGBA", (10, 10)))}
    source = ImageInput(data=b"\xff\xd8\xff garbage", mime="image/jpeg")
    with pytest.raises(ProviderError) as info:
        await provider.run(request(operation, settings, source, media))
    assert info.value.code == "image_undecodable"
    assert info.value.retryable is False


async def test_undecodable_template(provider: LocalProvider) -> None:
    media = {"template_media_id": ImageInput(data=b"nope", mime="image/png")}
    with pytest.raises(ProviderError) as info:
        await provider.run(request("frame", {}, media=media))
    assert info.value.code == "image_undecodable"
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("operation", "settings"),
    [
        ("reframe", {}),
        ("reframe", {"aspect_ratio": "1:1", "pad_color": "red", "mode": "pad"}),
        ("resize", {}),
        ("resize", {"width": 10, "output": {"format": "gif"}}),
    ],
)
async def test_invalid_settings_are_final_errors(
    provider: LocalProvider, operation: str, settings: dict[str, Any]
) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.run(request(operation, settings))
    assert info.value.code == "settings_invalid"
    assert info.value.retryable is False
