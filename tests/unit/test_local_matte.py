"""`extract_object` (boothbridge.providers.local.matte) on real pixels — scikit-image's astronaut photo with a
synthetic mask (seed 002 §3.1: white keeps, black is transparent; §2.1: border adjustment and blur) — and through
the `local` provider: a PNG with alpha, the missing mask a final error."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageFilter
from skimage import data

from boothbridge.providers.base import ImageInput, ImageSource, ProviderError, ProviderRequest
from boothbridge.providers.local.adapter import LocalProvider
from boothbridge.providers.local.matte import adjust_border, extract_object

BOX = (100, 120, 300, 400)  # the kept rectangle (left, top, right, bottom) in the 512x512 astronaut
BOX_PIXELS = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())  # 512x512 RGB


def rect_mask(size: tuple[int, int] = (512, 512), box: tuple[int, int, int, int] = BOX) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def alpha_counts(img: Image.Image) -> tuple[int, int, int]:
    """(transparent, partial, opaque) pixel counts of the alpha channel."""
    hist = img.getchannel("A").histogram()
    return hist[0], sum(hist[1:255]), hist[255]


def test_inside_is_kept_outside_is_transparent() -> None:
    photo = astronaut()
    out = extract_object(photo, rect_mask())
    assert out.mode == "RGBA" and out.size == photo.size
    assert alpha_counts(out) == (512 * 512 - BOX_PIXELS, 0, BOX_PIXELS)
    for point in [(100, 120), (299, 399), (200, 250)]:
        assert out.getpixel(point) == (*photo.getpixel(point), 255)  # type: ignore[misc]
    for point in [(99, 120), (300, 250), (10, 10)]:
        pixel = out.getpixel(point)
        assert isinstance(pixel, tuple) and pixel[3] == 0


def test_a_mask_of_another_size_is_resized_to_the_photo() -> None:
    small = rect_mask((128, 128), (25, 30, 75, 100))  # BOX at a quarter of the size
    out = extract_object(astronaut(), small)
    assert out.size == (512, 512)
    alpha = out.getchannel("A")
    # The 4x bilinear upscale blends at most 4 px on each side of the rectangle's edges, nowhere else.
    assert alpha.crop((BOX[0] + 4, BOX[1] + 4, BOX[2] - 4, BOX[3] - 4)).getextrema() == (255, 255)
    bbox = alpha.getbbox()
    assert bbox is not None
    left, top, right, bottom = bbox
    assert BOX[0] - 4 <= left <= BOX[0] and BOX[1] - 4 <= top <= BOX[1]
    assert BOX[2] <= right <= BOX[2] + 4 and BOX[3] <= bottom <= BOX[3] + 4


@pytest.mark.parametrize(("border", "width", "height"), [(5, 210, 290), (-5, 190, 270)])
def test_the_border_grows_or_shrinks_the_kept_area(border: int, width: int, height: int) -> None:
    out = extract_object(astronaut(), rect_mask(), border_px=border)
    assert alpha_counts(out) == (512 * 512 - width * height, 0, width * height)
    assert out.getchannel("A").getbbox() == (BOX[0] - border, BOX[1] - border, BOX[2] + border, BOX[3] + border)


def test_the_border_adjustment_equals_pillows_rank_filters() -> None:
    rng = random.Random(7)
    mask = Image.new("L", (37, 29))
    mask.putdata([rng.choice([0, 0, 0, 40, 128, 255]) for _ in range(37 * 29)])
    for radius in (1, 3, 6):
        grown = adjust_border(mask, radius).tobytes()
        shrunk = adjust_border(mask, -radius).tobytes()
        assert grown == mask.filter(ImageFilter.MaxFilter(2 * radius + 1)).tobytes()
        assert shrunk == mask.filter(ImageFilter.MinFilter(2 * radius + 1)).tobytes()


def test_blur_feathers_only_near_the_edge() -> None:
    out = extract_object(astronaut(), rect_mask(), blur_px=3)
    alpha = out.getchannel("A")
    _, partial, _ = alpha_counts(out)
    assert partial > 0
    assert alpha.getpixel((200, 250)) == 255 and alpha.getpixel((20, 20)) == 0
    # Every partly transparent pixel lies within a few radii of the rectangle's edge.
    near = Image.new("L", (512, 512), 0)
    near.paste(255, (BOX[0] - 12, BOX[1] - 12, BOX[2] + 12, BOX[3] + 12))
    near.paste(0, (BOX[0] + 12, BOX[1] + 12, BOX[2] - 12, BOX[3] - 12))
    for x in range(0, 512, 3):
        for y in range(0, 512, 3):
            value = alpha.getpixel((x, y))
            assert isinstance(value, int)
            if 0 < value < 255:
                assert near.getpixel((x, y)) == 255, (x, y)


def test_the_photos_own_alpha_is_respected() -> None:
    photo = astronaut().convert("RGBA")
    half = Image.new("L", photo.size, 255)
    half.paste(0, (0, 0, 200, 512))  # the photo is transparent left of x = 200
    photo.putalpha(half)
    alpha = extract_object(photo, rect_mask()).getchannel("A")
    assert alpha.getpixel((150, 250)) == 0  # kept by the mask, transparent in the photo
    assert alpha.getpixel((250, 250)) == 255
    assert alpha.getbbox() == (200, BOX[1], BOX[2], BOX[3])


@pytest.mark.parametrize("mode", ["1", "RGB", "P", "RGBA", "LA"])
def test_masks_in_other_modes_work(mode: str) -> None:
    mask = rect_mask().convert(mode)
    if mode in ("RGBA", "LA"):
        mask.putalpha(Image.new("L", mask.size, 0))  # a fully transparent alpha: the brightness still decides
    assert alpha_counts(extract_object(astronaut(), mask)) == (512 * 512 - BOX_PIXELS, 0, BOX_PIXELS)


def test_a_sixteen_bit_mask_is_scaled() -> None:
    mask = Image.new("I;16", (512, 512), 0)
    mask.paste(65535, BOX)
    assert alpha_counts(extract_object(astronaut(), mask)) == (512 * 512 - BOX_PIXELS, 0, BOX_PIXELS)


@pytest.mark.parametrize(("border", "blur"), [(51, 0.0), (-51, 0.0), (0, -1.0), (0, 50.5)])
def test_out_of_range_options_are_refused(border: int, blur: float) -> None:
    with pytest.raises(ValueError):
        extract_object(astronaut(), rect_mask(), border_px=border, blur_px=blur)


def png(img: Image.Image) -> ImageInput:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return ImageInput(data=buf.getvalue(), mime="image/png")


def request(settings: dict[str, object], media: dict[str, ImageSource]) -> ProviderRequest:
    return ProviderRequest(
        job_id="job-1",
        attempt=1,
        operation_id="extract_object",
        settings=settings,
        source=png(astronaut()),
        media=media,
    )


async def test_provider_makes_a_png_with_alpha_even_when_jpeg_is_asked() -> None:
    settings: dict[str, object] = {"border_adjustment": 5, "use_blur": False, "output": {"format": "jpeg"}}
    result = await LocalProvider().run(
        request(settings, {"mask_media_id": png(rect_mask((256, 256), (50, 60, 150, 200)))})
    )
    assert result.image.mime == "image/png" and result.cost == 0
    out = Image.open(io.BytesIO(result.image.data))
    assert out.mode == "RGBA" and out.size == (512, 512)
    assert out.getchannel("A").getpixel((200, 250)) == 255 and out.getchannel("A").getpixel((20, 20)) == 0
    assert out.getchannel("A").getpixel((BOX[0] - 3, 250)) == 255  # grown by the 5 px border


async def test_provider_blurs_only_with_use_blur() -> None:
    mask: dict[str, ImageSource] = {"mask_media_id": png(rect_mask())}
    sharp = await LocalProvider().run(request({"blur_radius": 4}, mask))
    soft = await LocalProvider().run(request({"use_blur": True, "blur_radius": 4}, mask))
    assert alpha_counts(Image.open(io.BytesIO(sharp.image.data)))[1] == 0
    assert alpha_counts(Image.open(io.BytesIO(soft.image.data)))[1] > 0


async def test_provider_without_mask_is_a_final_error() -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request({}, {}))
    assert caught.value.code == "template_missing" and not caught.value.retryable


async def test_provider_bad_border_is_settings_invalid() -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(request({"border_adjustment": 80}, {"mask_media_id": png(rect_mask())}))
    assert caught.value.code == "settings_invalid" and not caught.value.retryable
