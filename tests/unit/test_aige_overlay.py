"""The `local` provider's `overlay` operation (AIGE's `PUT /avatar/{id}/overlay`), on real pixels: a person image with
a transparent surround put OVER a background at x, y (its top-left corner, background pixels) and scale, then
optionally centre-cropped to an aspect ratio (`W:H` or fal's size names, both seed versions)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest
from boothbridge.providers.local import ops as local_ops
from boothbridge.providers.local.adapter import LocalProvider

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def person(size: tuple[int, int] = (20, 40), colour: tuple[int, int, int] = RED) -> Image.Image:
    """A transparent RGBA image with an opaque `colour` body in its middle half (columns w/4 .. 3w/4)."""
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    img.paste((*colour, 255), (size[0] // 4, 0, size[0] * 3 // 4, size[1]))
    return img


def px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 6) -> bool:
    """Equal within `tol` per channel (a resampled edge rings a little into its neighbours)."""
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def png(img: Image.Image) -> ImageInput:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return ImageInput(buf.getvalue(), "image/png")


def test_person_is_drawn_over_the_background_at_its_top_left() -> None:
    out = local_ops.overlay(person(), Image.new("RGB", (100, 80), GREEN), x=30, y=10, scale=1)
    assert out.mode == "RGB" and out.size == (100, 80)
    assert px(out, (40, 30)) == RED  # body: columns 35..44, rows 10..49
    assert px(out, (31, 30)) == GREEN  # the person's transparent left quarter shows the background
    assert px(out, (40, 9)) == GREEN  # above the person
    assert px(out, (40, 50)) == GREEN  # below the person
    assert px(out, (34, 30)) == GREEN and px(out, (35, 30)) == RED


def test_scale_enlarges_the_person_from_its_top_left() -> None:
    out = local_ops.overlay(person(), Image.new("RGB", (100, 100), GREEN), x=0, y=0, scale=2)
    # Scaled to 40x80: the body spans columns 10..29, rows 0..79.
    assert close_to(px(out, (12, 78)), RED) and close_to(px(out, (27, 2)), RED)
    assert close_to(px(out, (5, 40)), GREEN) and close_to(px(out, (35, 40)), GREEN)
    assert px(out, (20, 85)) == GREEN


def test_half_transparent_person_blends_with_the_background() -> None:
    half = Image.new("RGBA", (10, 10), (*RED, 128))
    out = local_ops.overlay(half, Image.new("RGB", (20, 20), BLUE), x=5, y=5, scale=1)
    r, g, b = px(out, (9, 9))
    assert abs(r - 128) <= 2 and g == 0 and abs(b - 127) <= 2
    assert px(out, (2, 2)) == BLUE


def test_parts_outside_the_background_are_dropped() -> None:
    out = local_ops.overlay(person(), Image.new("RGB", (30, 30), GREEN), x=-10, y=20, scale=1)
    assert out.size == (30, 30)
    # Body columns -5..4 clipped to 0..4, rows 20..29.
    assert px(out, (0, 25)) == RED and px(out, (4, 29)) == RED
    assert px(out, (5, 25)) == GREEN and px(out, (0, 19)) == GREEN


def test_person_entirely_outside_leaves_the_background() -> None:
    out = local_ops.overlay(person(), Image.new("RGB", (30, 30), GREEN), x=500, y=500, scale=1)
    assert out.getcolors() == [(900, GREEN)]


def test_opaque_person_covers_the_background() -> None:
    out = local_ops.overlay(Image.new("RGB", (10, 10), RED), Image.new("RGB", (10, 10), GREEN), x=0, y=0, scale=1)
    assert out.getcolors() == [(100, RED)]


def test_transparent_background_keeps_alpha() -> None:
    background = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    out = local_ops.overlay(person(), background, x=0, y=0, scale=1)
    assert out.mode == "RGBA"
    assert px(out, (10, 10)) == (*RED, 255)
    assert px(out, (30, 10))[3] == 0


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("1:1", (180, 180)),
        ("square_hd", (180, 180)),
        ("square", (180, 180)),
        ("16:9", (320, 180)),
        ("landscape_16_9", (320, 180)),
        ("4:3", (240, 180)),
        ("landscape_4_3", (240, 180)),
        ("3:4", (135, 180)),
        ("portrait_4_3", (135, 180)),
        ("9:16", (101, 180)),
        ("portrait_16_9", (101, 180)),
    ],
)
def test_aspect_ratio_centre_crops_the_composite(ratio: str, size: tuple[int, int]) -> None:
    out = local_ops.overlay(person(), Image.new("RGB", (320, 180), GREEN), x=0, y=0, scale=1, aspect_ratio=ratio)
    assert out.size == size


def test_crop_keeps_the_centre_and_the_person_moves_with_it() -> None:
    background = Image.new("RGB", (200, 100), GREEN)
    background.paste(BLUE, (0, 0, 50, 100))  # the left 50 px are cropped away by 1:1
    out = local_ops.overlay(person(), background, x=90, y=0, scale=1, aspect_ratio="1:1")
    assert out.size == (100, 100)
    assert px(out, (0, 50)) == GREEN  # background column 50
    assert px(out, (45, 20)) == RED  # person body columns 95..104 -> 45..54 after the crop


@pytest.mark.parametrize("ratio", ["5:x", "0:1", "wide", ""])
def test_bad_ratio_is_refused(ratio: str) -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        local_ops.overlay(person(), Image.new("RGB", (10, 10)), 0, 0, 1, aspect_ratio=ratio)


@pytest.mark.parametrize("scale", [0, -1])
def test_non_positive_scale_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        local_ops.overlay(person(), Image.new("RGB", (10, 10)), 0, 0, scale)


def test_frame_still_puts_the_photo_under_its_template() -> None:
    template = Image.new("RGBA", (40, 40), (*BLUE, 255))
    template.paste((0, 0, 0, 0), (10, 10, 30, 30))
    out = local_ops.frame(Image.new("RGB", (40, 40), RED), template, x=0, y=0, scale=1)
    assert px(out, (20, 20)) == RED and px(out, (5, 5)) == BLUE


def request(settings: dict[str, Any], media: dict[str, ImageInput]) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-1",
        attempt=1,
        operation_id="overlay",
        settings=settings,
        source=png(person()),
        media=media,
    )


async def test_provider_runs_overlay_with_catalog_defaults() -> None:
    background = png(Image.new("RGB", (60, 50), GREEN))
    result = await LocalProvider().run(request({}, {"background_media_id": background}))
    assert result.image.mime == "image/jpeg"  # the catalog's default output
    img = Image.open(io.BytesIO(result.image.data))
    assert img.size == (60, 50)
    r, g, b = px(img.convert("RGB"), (10, 20))  # x = y = 0, scale 1: the body at columns 5..14
    assert r > 200 and g < 60 and b < 60
    r, g, b = px(img.convert("RGB"), (40, 20))
    assert g > 200 and r < 60


async def test_provider_overlay_settings_and_png() -> None:
    background = png(Image.new("RGB", (160, 90), GREEN))
    settings = {"x": 70, "y": 5, "scale": 2, "aspect_ratio": "square_hd", "output": {"format": "png"}}
    result = await LocalProvider().run(request(settings, {"background_media_id": background}))
    assert result.image.mime == "image/png"
    img = Image.open(io.BytesIO(result.image.data))
    assert img.size == (90, 90)
    # Scaled body columns 80..99 of the background; the 1:1 crop starts at column 35.
    assert close_to(px(img.convert("RGB"), (50, 40)), RED)
    assert close_to(px(img.convert("RGB"), (40, 40)), GREEN)


async def test_provider_overlay_without_background_is_a_final_error() -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request({}, {}))
    assert caught.value.code == "template_missing" and not caught.value.retryable


async def test_provider_overlay_bad_settings_are_a_final_error() -> None:
    background = png(Image.new("RGB", (20, 20), GREEN))
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request({"aspect_ratio": "7"}, {"background_media_id": background}))
    assert caught.value.code == "settings_invalid" and not caught.value.retryable


async def test_provider_overlay_undecodable_background_is_a_final_error() -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request({}, {"background_media_id": ImageInput(b"nope", "image/png")}))
    assert caught.value.code == "image_undecodable" and not caught.value.retryable
