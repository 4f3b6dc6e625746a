"""The local `replace_background` (`providers.local.composite`) and both person operations through
`LocalProvider.run`: placement (x, y, scale), the template's transparency, the RGBA and opaque photo paths, and
the provider's errors. The photo is scikit-image's astronaut (512x512)."""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data as samples

from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest, ProviderResult
from boothbridge.providers.local import composite
from boothbridge.providers.local.adapter import LocalProvider

TEMPLATE_COLOUR = (30, 60, 200)
DIE_CUT = (380, 480, 460, 560)  # a transparent hole in the template, where the suit lands at x=100, y=50
FACE, WALL, SUIT = (225, 100), (100, 100), (200, 400)  # astronaut pixels: person, background, person


@functools.cache
def astronaut() -> Image.Image:
    return Image.fromarray(samples.astronaut())


def template(die_cut: bool = True) -> Image.Image:
    """An 800x600 event template in one colour; with `die_cut`, transparent in `DIE_CUT`."""
    img = Image.new("RGBA", (800, 600), (*TEMPLATE_COLOUR, 255))
    if die_cut:
        img.paste((0, 0, 0, 0), DIE_CUT)
    return img


def near(pixel: Any, colour: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def photo_px(xy: tuple[int, int]) -> tuple[int, int, int]:
    value = astronaut().getpixel(xy)
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def test_the_person_lands_at_x_y_on_the_template_and_the_rest_is_the_template() -> None:
    result = composite.replace_background(astronaut(), template(), x=100, y=50, scale=1)

    assert (result.mode, result.size) == ("RGBA", (800, 600))
    assert near(result.getpixel((100 + FACE[0], 50 + FACE[1])), (*photo_px(FACE), 255))
    assert near(result.getpixel((100 + SUIT[0], 50 + SUIT[1])), (*photo_px(SUIT), 255))
    assert result.getpixel((100 + WALL[0], 50 + WALL[1])) == (*TEMPLATE_COLOUR, 255)  # the old wall is gone
    assert result.getpixel((50, 20)) == (*TEMPLATE_COLOUR, 255)  # outside the placed photo
    assert result.getpixel((700, 300)) == (*TEMPLATE_COLOUR, 255)


def test_the_templates_transparent_areas_stay_transparent_person_included() -> None:
    result = composite.replace_background(astronaut(), template(), x=100, y=50, scale=1)

    alpha = np.asarray(result.getchannel("A"))
    left, top, right, bottom = DIE_CUT
    assert alpha[top:bottom, left:right].max() == 0  # the suit lands here, and is cut out with the template
    assert alpha[:top].min() == 255 and alpha[bottom:].min() == 255


def test_scale_resizes_the_person_about_its_top_left_corner() -> None:
    result = composite.replace_background(astronaut(), template(die_cut=False), x=40, y=10, scale=0.5)

    assert result.mode == "RGB"  # an opaque template: an opaque result
    assert near(result.getpixel((40 + FACE[0] // 2, 10 + FACE[1] // 2)), photo_px(FACE), 12)
    assert result.getpixel((40 + WALL[0] // 2, 10 + WALL[1] // 2)) == TEMPLATE_COLOUR
    assert result.getpixel((40 + 300, 10 + 300)) == TEMPLATE_COLOUR  # beyond the 256x256 placed photo


def test_a_photo_with_transparency_is_its_own_matte() -> None:
    # A red square on a transparent 200x200: no face, no person — a segmented photo would be empty.
    cut_out = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    cut_out.paste((220, 20, 20, 255), (50, 50, 150, 150))

    result = composite.replace_background(cut_out, template(die_cut=False), x=300, y=200, scale=2)

    # 50..150 scaled x2: 100..300 (LANCZOS rings a few pixels past an edge: looked at away from it)
    assert result.getpixel((300 + 112, 200 + 112)) == (220, 20, 20)
    assert result.getpixel((300 + 288, 200 + 288)) == (220, 20, 20)
    assert result.getpixel((300 + 88, 200 + 88)) == TEMPLATE_COLOUR
    assert result.getpixel((300 + 312, 200 + 312)) == TEMPLATE_COLOUR


def test_an_opaque_rgba_photo_is_segmented() -> None:
    as_rgba = composite.replace_background(astronaut().convert("RGBA"), template(), x=100, y=50, scale=1)
    as_rgb = composite.replace_background(astronaut(), template(), x=100, y=50, scale=1)
    assert as_rgba.tobytes() == as_rgb.tobytes()


def test_a_photo_without_a_person_leaves_the_template() -> None:
    result = composite.replace_background(Image.fromarray(samples.chelsea()), template(), x=0, y=0, scale=1)
    assert result.tobytes() == template().tobytes()


@pytest.mark.parametrize("scale", [0, -1.5])
def test_a_scale_that_is_not_positive_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        composite.replace_background(astronaut(), template(), x=0, y=0, scale=scale)


# ---- through the provider ----------------------------------------------------------------------------------


def encoded(img: Image.Image, fmt: str) -> ImageInput:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return ImageInput(data=buf.getvalue(), mime=f"image/{fmt.lower()}")


def request(operation: str, settings: dict[str, Any], media: dict[str, ImageInput] | None = None) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-v1",
        attempt=1,
        operation_id=operation,
        settings=settings,
        source=encoded(astronaut(), "PNG"),
        media=media or {},
    )


def opened(result: ProviderResult) -> Image.Image:
    img = Image.open(io.BytesIO(result.image.data))
    img.load()
    return img


async def test_remove_background_answers_a_png_whatever_the_output_setting() -> None:
    result = await LocalProvider().run(request("remove_background", {"output": {"format": "jpeg"}}))

    assert (result.image.mime, result.cost) == ("image/png", 0.0)
    img = opened(result)
    assert (img.format, img.mode, img.size) == ("PNG", "RGBA", (512, 512))
    assert img.getpixel(WALL)[3] == 0 and img.getpixel(FACE) == (*photo_px(FACE), 255)


async def test_replace_background_through_the_provider_as_png_keeps_the_die_cut() -> None:
    settings = {"template_media_id": "t", "x": 100, "y": 50, "output": {"format": "png"}}
    result = await LocalProvider().run(
        request("replace_background", settings, {"template_media_id": encoded(template(), "PNG")})
    )

    img = opened(result)
    assert (result.image.mime, img.mode, img.size) == ("image/png", "RGBA", (800, 600))
    assert img.getpixel((DIE_CUT[0] + 5, DIE_CUT[1] + 5))[3] == 0
    assert near(img.getpixel((100 + FACE[0], 50 + FACE[1])), (*photo_px(FACE), 255))


async def test_replace_background_as_jpeg_flattens_the_transparent_parts_on_white() -> None:
    settings = {"template_media_id": "t", "x": 100, "y": 50}  # the default output: JPEG
    result = await LocalProvider().run(
        request("replace_background", settings, {"template_media_id": encoded(template(), "PNG")})
    )

    img = opened(result)
    assert (result.image.mime, img.mode) == ("image/jpeg", "RGB")
    assert near(img.getpixel((DIE_CUT[0] + 40, DIE_CUT[1] + 40)), (255, 255, 255), 10)
    assert near(img.getpixel((700, 300)), TEMPLATE_COLOUR, 10)


async def test_replace_background_without_its_template_is_template_missing() -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request("replace_background", {"template_media_id": "t"}))
    assert (caught.value.code, caught.value.retryable) == ("template_missing", False)


async def test_replace_background_with_a_template_that_is_no_image_is_image_undecodable() -> None:
    media = {"template_media_id": ImageInput(data=b"not an image at all", mime="image/png")}
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request("replace_background", {"template_media_id": "t"}, media))
    assert (caught.value.code, caught.value.retryable) == ("image_undecodable", False)
    assert "template" in str(caught.value)


@pytest.mark.parametrize(
    ("operation", "settings"),
    [
        ("remove_background", {"feather_px": -1}),
        ("remove_background", {"border_adjustment": 99}),
        ("replace_background", {"template_media_id": "t", "scale": 0}),
        ("replace_background", {"template_media_id": "t", "feather_px": "soft"}),
    ],
)
async def test_settings_out_of_range_are_settings_invalid(operation: str, settings: dict[str, Any]) -> None:
    media = {"template_media_id": encoded(template(), "PNG")}
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request(operation, settings, media))
    assert (caught.value.code, caught.value.retryable) == ("settings_invalid", False)
