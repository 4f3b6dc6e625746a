"""The finishing stage (issue 14, item 4) on real photos: scikit-image's sample images (astronaut 512x512,
chelsea 451x300, coffee 600x400), encoded here as the image boundary hands them on (8-bit RGB/RGBA JPEG or PNG)."""

from __future__ import annotations

import io
import uuid
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from PIL import Image, ImageCms, ImageFilter, ImageStat
from skimage import data as samples

from boothbridge.images.finishing import (
    FINISHING_SCHEMA,
    Finishing,
    FinishingError,
    _decode,
    finish_image,
    parse_finishing,
)
from tests.support.images import camera_jpeg

JPEG, PNG = "image/jpeg", "image/png"


def photo(name: str) -> Image.Image:
    """One of scikit-image's sample photos as an RGB image."""
    return Image.fromarray(getattr(samples, name)())


def encoded(img: Image.Image, fmt: str = "JPEG", **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def noisy(size: tuple[int, int], amplitude: int = 40, seed: int = 7) -> Image.Image:
    """Chelsea scaled to `size` with uniform noise of +-`amplitude` levels: a large photo that compresses badly,
    like a camera's at high ISO."""
    base = np.asarray(photo("chelsea").resize(size, Image.Resampling.BICUBIC)).astype(np.int16)
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, base.shape, dtype=np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tol: int) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def edge_energy(img: Image.Image) -> float:
    """Mean response of an edge filter on the luminance: higher when edges are steeper."""
    return float(ImageStat.Stat(img.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0])


# ---- size ----------------------------------------------------------------------------------------------------


# (sample, its size, box): wider and taller boxes than each photo, and a square photo into both.
SIZE_CASES = [
    ("coffee", (600, 400), (300, 300)),  # photo wider than the box
    ("coffee", (600, 400), (200, 400)),  # much wider
    ("coffee", (600, 400), (900, 450)),  # box wider than the photo: enlarged
    ("astronaut", (512, 512), (300, 200)),
    ("astronaut", (512, 512), (200, 300)),
    ("chelsea", (451, 300), (1800, 1200)),  # same ratio within a pixel, enlarged 4x
]


@pytest.mark.parametrize(("name", "size", "box"), SIZE_CASES)
def test_fit_scales_inside_the_box_keeping_the_aspect_ratio(
    name: str, size: tuple[int, int], box: tuple[int, int]
) -> None:
    out, mime = finish_image(encoded(photo(name)), JPEG, Finishing(width=box[0], height=box[1], fit="fit"), None)
    w, h = decoded(out).size
    scale = min(box[0] / size[0], box[1] / size[1])
    assert mime == JPEG
    assert (w, h) == (round(size[0] * scale), round(size[1] * scale))
    assert w == box[0] or h == box[1]
    assert w <= box[0] and h <= box[1]


@pytest.mark.parametrize(("name", "size", "box"), SIZE_CASES)
@pytest.mark.parametrize("fit", ["fill", "pad"])
def test_fill_and_pad_give_exactly_the_box(name: str, size: tuple[int, int], box: tuple[int, int], fit: str) -> None:
    out, _ = finish_image(encoded(photo(name)), JPEG, Finishing(width=box[0], height=box[1], fit=fit), None)
    assert decoded(out).size == box


def test_one_side_scales_keeping_the_aspect_ratio() -> None:
    coffee = encoded(photo("coffee"))  # 600x400
    for fit in (None, "fill", "pad"):  # a box with a free side has nothing to crop or pad
        out, _ = finish_image(coffee, JPEG, Finishing(width=300, fit=fit, pad_color="#ff0000"), None)
        assert decoded(out).size == (300, 200)
    out, _ = finish_image(coffee, JPEG, Finishing(height=1000), None)
    assert decoded(out).size == (1500, 1000)


def test_fill_crops_the_centre() -> None:
    """Left third red, middle green, right third blue; filled into a square, only green remains at the sides."""
    img = Image.new("RGB", (600, 200), (0, 200, 0))
    img.paste((220, 0, 0), (0, 0, 200, 200))
    img.paste((0, 0, 220), (400, 0, 600, 200))
    out, _ = finish_image(encoded(img, "PNG"), PNG, Finishing(width=100, height=100, fit="fill"), None)
    result = decoded(out)
    assert result.size == (100, 100)
    assert close_to(px(result, (2, 50)), (0, 200, 0), 4)
    assert close_to(px(result, (97, 50)), (0, 200, 0), 4)


@pytest.mark.parametrize(("box", "inside"), [((600, 600), (300, 300)), ((900, 400), (450, 200))])
def test_pad_fills_the_margin_with_the_pad_colour(box: tuple[int, int], inside: tuple[int, int]) -> None:
    spec = Finishing(width=box[0], height=box[1], fit="pad", pad_color="#FF8000", format="png")
    out, mime = finish_image(encoded(photo("coffee")), JPEG, spec, None)
    result = decoded(out)
    assert (mime, result.size, result.mode) == (PNG, box, "RGB")
    assert px(result, (0, 0)) == (255, 128, 0)
    assert px(result, (box[0] - 1, box[1] - 1)) == (255, 128, 0)
    assert px(result, inside) != (255, 128, 0)  # the photo is there


def test_pad_defaults_to_white_and_is_opaque_for_an_image_with_alpha() -> None:
    rgba = photo("astronaut").convert("RGBA")
    out, mime = finish_image(encoded(rgba, "PNG"), PNG, Finishing(width=400, height=200, fit="pad"), None)
    result = decoded(out)
    assert (mime, result.mode, result.size) == (PNG, "RGBA", (400, 200))
    assert px(result, (0, 0)) == (255, 255, 255, 255)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_picture() -> None:
    """A 4000x3000 camera JPEG filled to 300x300: the draft decode gives what a full decode gives, within noise."""
    big = photo("chelsea").resize((4000, 3000), Image.Resampling.BICUBIC)
    out, _ = finish_image(encoded(big, quality=95), JPEG, Finishing(width=300, height=300, fit="fill"), None)
    result = decoded(out)
    reference = big.crop((500, 0, 3500, 3000)).resize((300, 300), Image.Resampling.LANCZOS)
    assert result.size == (300, 300)
    diff = np.abs(np.asarray(result).astype(int) - np.asarray(reference).astype(int))
    assert float(diff.mean()) < 3.0


def test_a_sideways_camera_jpeg_is_sized_upright() -> None:
    """Stored 4000x2000 red|green with EXIF orientation 6 (turned 90 degrees clockwise to be upright): planned and
    draft-decoded on the upright 2000x4000, so red ends up on top."""
    out, _ = finish_image(
        camera_jpeg(4000, 2000, orientation=6), JPEG, Finishing(width=200, height=300, fit="fill"), None
    )
    result = decoded(out)
    assert result.size == (200, 300)
    assert close_to(px(result, (100, 20)), (220, 20, 20), 12)
    assert close_to(px(result, (100, 280)), (20, 200, 20), 12)


def test_a_camera_jpeg_with_further_images_is_draft_decoded_too() -> None:
    """A JPEG with an MPF index of further images (a camera's preview) opens in Pillow as MPO: still a JPEG, decoded
    at the reduced scale asked for (it was decoded whole: the twin of the local provider's decode, found in review)."""
    out = io.BytesIO()
    main = photo("chelsea").resize((1600, 1200))
    main.save(out, "MPO", save_all=True, append_images=[photo("chelsea").resize((320, 240))], quality=90)
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    pixels, _, upright = _decode(out.getvalue(), "image_unusable", lambda size: (size[0] // 4, size[1] // 4))
    assert upright == (1600, 1200) and pixels.size == (400, 300)


# ---- sharpen, overlay --------------------------------------------------------------------------------------------


def test_sharpen_raises_edge_contrast_with_its_strength() -> None:
    source = encoded(photo("astronaut"), "PNG")
    energies = []
    for strength in (0.0, 0.5, 1.0):
        spec = Finishing(width=400, height=400, sharpen=strength, format="png")
        energies.append(edge_energy(decoded(finish_image(source, PNG, spec, None)[0])))
    assert energies[1] > energies[0] * 1.15
    assert energies[2] > energies[1] * 1.1


def overlay_png(size: tuple[int, int]) -> bytes:
    """A frame-like overlay: transparent, with an opaque red square in the top-left quarter and a half-transparent
    blue square in the bottom-right quarter."""
    w, h = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (0, 0, w // 4, h // 4))
    layer.paste((0, 0, 255, 128), (3 * w // 4, 3 * h // 4, w, h))
    return encoded(layer, "PNG")


@pytest.mark.parametrize("overlay_size", [(600, 400), (1200, 800), (150, 100)])
def test_overlay_is_scaled_to_the_output_and_composited(overlay_size: tuple[int, int]) -> None:
    source = encoded(photo("coffee"), "PNG")
    spec = Finishing(width=600, height=400, fit="fill", format="png", overlay_media_id=str(uuid.uuid4()))
    bare = decoded(finish_image(source, PNG, Finishing(width=600, height=400, fit="fill", format="png"), None)[0])
    out, mime = finish_image(source, PNG, spec, overlay_png(overlay_size))
    result = decoded(out)
    assert (mime, result.size) == (PNG, (600, 400))
    assert px(result, (40, 40)) == (255, 0, 0)  # opaque spot
    assert px(result, (300, 200)) == px(bare, (300, 200))  # fully transparent spot: unchanged
    half = px(result, (560, 370))
    under = px(bare, (560, 370))
    assert close_to(half, (under[0] // 2, under[1] // 2, (under[2] + 255) // 2), 3)  # 50 % blue over the photo


def test_overlay_without_alpha_is_placed_opaque_and_centred() -> None:
    logo = encoded(Image.new("RGB", (100, 100), (0, 255, 0)))  # square, on a 3:2 output: fitted, centred
    out, _ = finish_image(encoded(photo("coffee"), "PNG"), PNG, Finishing(format="png"), logo)
    result = decoded(out)
    assert result.size == (600, 400)
    assert close_to(px(result, (300, 200)), (0, 255, 0), 2)
    assert px(result, (20, 200)) == photo("coffee").getpixel((20, 200))  # left of the square: the photo


def test_overlay_on_an_image_with_alpha_keeps_the_alpha_where_transparent() -> None:
    rgba = Image.new("RGBA", (200, 200), (10, 20, 30, 0))
    out, _ = finish_image(encoded(rgba, "PNG"), PNG, Finishing(), overlay_png((200, 200)))
    result = decoded(out)
    assert result.mode == "RGBA"
    assert px(result, (10, 10)) == (255, 0, 0, 255)
    assert px(result, (100, 100))[3] == 0


def test_an_unusable_or_missing_overlay_is_an_error() -> None:
    source = encoded(photo("coffee"))
    with pytest.raises(FinishingError) as broken:
        finish_image(source, JPEG, Finishing(overlay_media_id=str(uuid.uuid4())), b"\x89PNG\r\n\x1a\nnot really")
    assert broken.value.code == "overlay_unusable"
    with pytest.raises(FinishingError) as missing:
        finish_image(source, JPEG, Finishing(overlay_media_id=str(uuid.uuid4())), None)
    assert missing.value.code == "overlay_unusable"


# ---- format, quality, colour -------------------------------------------------------------------------------------


def test_format_conversion_and_the_mime_returned() -> None:
    png_in = encoded(photo("chelsea"), "PNG")
    out, mime = finish_image(png_in, PNG, Finishing(format="jpeg"), None)
    assert mime == JPEG and out.startswith(b"\xff\xd8") and decoded(out).format == "JPEG"
    out, mime = finish_image(encoded(photo("chelsea")), JPEG, Finishing(format="png"), None)
    assert mime == PNG and decoded(out).format == "PNG"
    out, mime = finish_image(png_in, PNG, Finishing(width=200), None)  # the input's format by default
    assert mime == PNG and decoded(out).format == "PNG"


def test_jpeg_output_flattens_alpha_on_white() -> None:
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((0, 0, 200, 255), (32, 0, 64, 64))
    out, mime = finish_image(encoded(rgba, "PNG"), PNG, Finishing(format="jpeg"), None)
    result = decoded(out)
    assert (mime, result.mode) == (JPEG, "RGB")
    assert close_to(px(result, (8, 32)), (255, 255, 255), 3)
    assert close_to(px(result, (56, 32)), (0, 0, 200), 6)


def test_quality_sets_the_jpeg_quality() -> None:
    source = encoded(photo("astronaut"), "PNG")
    low, _ = finish_image(source, PNG, Finishing(format="jpeg", quality=30), None)
    default, _ = finish_image(source, PNG, Finishing(format="jpeg"), None)
    assert len(low) < len(default)
    assert default == encoded(photo("astronaut"), quality=90)  # 90 by default, no metadata


def test_an_embedded_icc_profile_is_kept() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out, _ = finish_image(encoded(photo("coffee"), icc_profile=srgb), JPEG, Finishing(width=300), None)
    assert decoded(out).info.get("icc_profile") == srgb
    out, _ = finish_image(encoded(photo("coffee")), JPEG, Finishing(width=300), None)
    assert "icc_profile" not in decoded(out).info


# ---- the byte cap --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_noisy_jpeg() -> bytes:
    return encoded(noisy((4000, 3000)), quality=95)


def quality_table_sum(img: Image.Image) -> int:
    tables = getattr(img, "quantization", None)
    assert tables
    return sum(tables[0])


def test_the_cap_is_met_by_quality_first(large_noisy_jpeg: bytes) -> None:
    at_90 = len(finish_image(large_noisy_jpeg, JPEG, Finishing(quality=90), None)[0])
    cap = at_90 * 2 // 3
    out, mime = finish_image(large_noisy_jpeg, JPEG, Finishing(max_bytes=cap), None)
    result = decoded(out)
    assert mime == JPEG
    assert len(out) <= cap
    assert len(out) > cap * 0.85  # the highest quality that fits, not the floor
    assert result.size == (4000, 3000)  # no resolution lost
    assert quality_table_sum(result) > quality_table_sum(decoded(encoded(Image.new("RGB", (8, 8)), quality=90)))


def test_the_cap_is_met_by_size_when_quality_is_not_enough(large_noisy_jpeg: bytes) -> None:
    at_floor = len(finish_image(large_noisy_jpeg, JPEG, Finishing(quality=40), None)[0])
    cap = at_floor // 3
    out, _ = finish_image(large_noisy_jpeg, JPEG, Finishing(max_bytes=cap), None)
    w, h = decoded(out).size
    assert len(out) <= cap
    assert len(out) > cap * 0.7  # close under the cap, not far below it
    assert w < 4000 and abs(w / h - 4 / 3) < 0.01


def test_print_size_under_a_cap_is_exact(large_noisy_jpeg: bytes) -> None:
    """The issue's case: 1800x1200 under 1.5 MB, and under a cap that needs the detail lowered (size kept)."""
    for cap in (1_500_000, 200_000):
        spec = Finishing(width=1800, height=1200, fit="fill", max_bytes=cap)
        out, mime = finish_image(large_noisy_jpeg, JPEG, spec, None)
        assert mime == JPEG and len(out) <= cap
        assert decoded(out).size == (1800, 1200)


def test_a_png_over_the_cap_stays_png_at_its_exact_size() -> None:
    source = encoded(noisy((600, 400)), "PNG")
    spec = Finishing(width=500, height=500, fit="pad", max_bytes=300_000)
    out, mime = finish_image(source, PNG, spec, None)
    assert mime == PNG and len(out) <= 300_000
    assert decoded(out).size == (500, 500)
    free, _ = finish_image(source, PNG, Finishing(max_bytes=300_000), None)  # size free: the image shrinks
    assert len(free) <= 300_000 and decoded(free).size[0] < 600


def test_an_unreachable_cap_raises() -> None:
    with pytest.raises(FinishingError) as err:
        finish_image(encoded(noisy((600, 400))), JPEG, Finishing(max_bytes=300), None)
    assert err.value.code == "finishing_cap_unreachable"


# ---- nothing to do, bad input -------------------------------------------------------------------------------


def test_a_noop_spec_returns_the_input_unchanged() -> None:
    source = encoded(photo("chelsea"), quality=77)
    assert parse_finishing({}).is_noop
    assert finish_image(source, JPEG, parse_finishing({}), None) == (source, JPEG)
    assert finish_image(source, JPEG, Finishing(fit="pad", pad_color="#000000", sharpen=0), None) == (source, JPEG)
    # the input's own format and a cap it already meets: nothing to re-encode
    assert finish_image(source, JPEG, Finishing(format="jpeg", max_bytes=len(source)), None) == (source, JPEG)
    assert finish_image(source, JPEG, Finishing(max_bytes=len(source) - 1), None)[0] != source


def test_an_undecodable_image_is_an_error() -> None:
    with pytest.raises(FinishingError) as err:
        finish_image(b"\xff\xd8\xff\xe0 not a jpeg", JPEG, Finishing(width=100), None)
    assert err.value.code == "finishing_failed" and err.value.message


# ---- the schema and parsing ---------------------------------------------------------------------------------------

VALIDATOR = Draft202012Validator(FINISHING_SCHEMA, format_checker=FormatChecker())  # as catalog.validate_settings


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(FINISHING_SCHEMA)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"width": 1800, "height": 1200, "fit": "fill"},
        {"width": 1, "height": 20000, "fit": "pad", "pad_color": "#aBc123"},
        {"width": 640},
        {"sharpen": 0},
        {"sharpen": 0.35},
        {"sharpen": 1},
        {"overlay_media_id": str(uuid.uuid4())},
        {"overlay_media_id": None},
        {"format": "png", "quality": 1},
        {"format": "jpeg", "quality": 100, "max_bytes": 10_000},
        {"max_bytes": 1_500_000},
    ],
)
def test_valid_finishing_objects(value: dict[str, Any]) -> None:
    assert list(VALIDATOR.iter_errors(value)) == []


@pytest.mark.parametrize(
    "value",
    [
        {"width": 0},
        {"width": 20001},
        {"height": 1200.5},
        {"width": "1800"},
        {"fit": "stretch"},
        {"pad_color": "red"},
        {"pad_color": "#fff"},
        {"pad_color": "#12345g"},
        {"sharpen": -0.1},
        {"sharpen": 1.5},
        {"overlay_media_id": "logo.png"},
        {"overlay_media_id": 42},
        {"format": "webp"},
        {"quality": 0},
        {"quality": 101},
        {"max_bytes": 9_999},
        {"max_bytes": 1.5e6 + 0.5},
        {"dpi": 300},
        [],
    ],
)
def test_invalid_finishing_objects(value: Any) -> None:
    assert list(VALIDATOR.iter_errors(value)) != []


def test_parse_finishing_reads_every_field() -> None:
    media = str(uuid.uuid4())
    value = {
        "width": 1800,
        "height": 1200,
        "fit": "pad",
        "pad_color": "#000000",
        "sharpen": 1,
        "overlay_media_id": media,
        "format": "jpeg",
        "quality": 85,
        "max_bytes": 1_500_000,
    }
    assert list(VALIDATOR.iter_errors(value)) == []
    spec = parse_finishing(value)
    assert spec == Finishing(1800, 1200, "pad", "#000000", 1.0, media, "jpeg", 85, 1_500_000)
    assert not spec.is_noop and spec.exact_size == (1800, 1200)
    assert parse_finishing(None) == Finishing() and parse_finishing({"overlay_media_id": None}).is_noop
    assert parse_finishing({"width": 10, "height": 10}).exact_size is None  # "fit": the scaled image, not the box


def test_a_downscaled_overlay_leaves_no_dark_fringe() -> None:
    """Transparent pixels stored as black must not darken the edges of an overlay scaled down by 3."""
    grey = encoded(Image.new("RGB", (600, 400), (128, 128, 128)), "PNG")
    layer = Image.new("RGBA", (1800, 1200), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (601, 401, 1201, 801))
    out, _ = finish_image(grey, PNG, Finishing(), encoded(layer, "PNG"))
    result = np.asarray(decoded(out))
    assert int(result.min()) >= 127
    assert tuple(result[200, 300]) == (255, 255, 255)
