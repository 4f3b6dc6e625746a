"""Unit tests for the pure Pillow operations behind the `local` provider."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from boothbridge.images import codec, vips
from boothbridge.providers.local import ops as local_ops

RATIOS = ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"]
SOURCE_SIZES = [(640, 480), (300, 500), (257, 257), (101, 37), (1920, 1080)]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def gradient(width: int, height: int) -> Image.Image:
    """An RGB image whose pixels are (x-ramp, y-ramp, 128): every position has a distinct colour."""
    img = Image.new("RGB", (width, height))
    img.putdata(
        [
            (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 128)
            for y in range(height)
            for x in range(width)
        ]
    )
    return img


def bands(width: int, height: int, edge: int) -> Image.Image:
    """Green image with a red band of `edge` px on the left and a blue band on the right."""
    img = Image.new("RGB", (width, height), GREEN)
    img.paste(RED, (0, 0, edge, height))
    img.paste(BLUE, (width - edge, 0, width, height))
    return img


def in_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert a test image to one of the input modes every operation must accept."""
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return img.convert(mode)


def px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at `xy` as a tuple (all test images here are multi-band)."""
    value = img.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 6) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def ratio_of(value: str) -> tuple[int, int]:
    w, h = value.split(":")
    return int(w), int(h)


# --- reframe -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SOURCE_SIZES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_reframe_crop_is_largest_exact_ratio_inside_source(ratio: str, size: tuple[int, int]) -> None:
    rw, rh = ratio_of(ratio)
    out = local_ops.reframe(Image.new("RGB", size), ratio, mode="crop")
    w, h = out.size
    assert w <= size[0] and h <= size[1]
    if w == size[0]:  # full width kept, height cut to the ratio
        assert abs(h - size[0] * rh / rw) <= 1
    else:
        assert h == size[1]
        assert abs(w - size[1] * rw / rh) <= 1


@pytest.mark.parametrize("size", SOURCE_SIZES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_reframe_pad_is_smallest_exact_ratio_containing_source(ratio: str, size: tuple[int, int]) -> None:
    rw, rh = ratio_of(ratio)
    out = local_ops.reframe(Image.new("RGB", size), ratio, mode="pad")
    w, h = out.size
    assert w >= size[0] and h >= size[1]
    if w == size[0]:
        assert abs(h - size[0] * rh / rw) <= 1
    else:
        assert h == size[1]
        assert abs(w - size[1] * rw / rh) <= 1


def test_reframe_crop_is_centred() -> None:
    out = local_ops.reframe(bands(400, 200, 100), "1:1")  # default mode is crop
    assert out.size == (200, 200)
    assert out.getcolors() == [(200 * 200, GREEN)]


def test_reframe_crop_keeps_the_centre_pixels() -> None:
    src = gradient(160, 90)
    out = local_ops.reframe(src, "1:1", mode="crop")
    assert out.size == (90, 90)
    for x, y in [(0, 0), (45, 45), (89, 89), (10, 70)]:
        assert px(out, (x, y)) == px(src, (x + 35, y))


def test_reframe_pad_fills_border_with_colour_and_centres_photo() -> None:
    out = local_ops.reframe(Image.new("RGB", (400, 200), GREEN), "1:1", mode="pad", pad_color="#FF0000")
    assert out.size == (400, 400)
    for xy in [(0, 0), (399, 399), (200, 50), (200, 99), (0, 300), (399, 300)]:
        assert px(out, xy) == RED, xy
    for xy in [(200, 100), (200, 299), (0, 100), (399, 299), (200, 200)]:
        assert px(out, xy) == GREEN, xy


def test_reframe_pad_side_bars_for_portrait_target() -> None:
    out = local_ops.reframe(Image.new("RGB", (90, 90), BLUE), "16:9", mode="pad", pad_color="#102030")
    assert out.size == (160, 90)
    assert px(out, (0, 45)) == (0x10, 0x20, 0x30)
    assert px(out, (34, 45)) == (0x10, 0x20, 0x30)
    assert px(out, (35, 45)) == BLUE
    assert px(out, (124, 0)) == BLUE
    assert px(out, (125, 89)) == (0x10, 0x20, 0x30)


def test_reframe_pad_default_colour_is_white() -> None:
    out = local_ops.reframe(Image.new("RGB", (100, 50), BLUE), "1:1", mode="pad")
    assert px(out, (0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_reframe_accepts_all_input_modes(mode: str) -> None:
    src = in_mode(bands(400, 200, 100), mode)
    cropped = local_ops.reframe(src, "1:1", mode="crop")
    padded = local_ops.reframe(src, "1:1", mode="pad", pad_color="#ff00ff")
    assert cropped.size == (200, 200)
    assert padded.size == (400, 400)
    assert padded.mode in ("RGB", "RGBA")
    assert px(padded, (0, 0))[:3] == (255, 0, 255)  # the pad is in colour even for L input


def test_reframe_pad_keeps_alpha_of_rgba_photo() -> None:
    src = Image.new("RGBA", (100, 50), (0, 0, 255, 0))
    out = local_ops.reframe(src, "1:1", mode="pad", pad_color="#00ff00")
    assert out.mode == "RGBA"
    assert px(out, (50, 0)) == (0, 255, 0, 255)
    assert px(out, (50, 50))[3] == 0


@pytest.mark.parametrize(
    ("ratio", "mode", "colour"),
    [
        ("16-9", "crop", "#ffffff"),
        ("0:1", "crop", "#ffffff"),
        ("1:1", "zoom", "#ffffff"),
        ("1:1", "pad", "red"),
    ],
)
def test_reframe_rejects_bad_arguments(ratio: str, mode: str, colour: str) -> None:
    with pytest.raises(ValueError):
        local_ops.reframe(Image.new("RGB", (10, 10)), ratio, mode=mode, pad_color=colour)


# --- frame ---------------------------------------------------------------------------------------------


def window_template(
    size: tuple[int, int], window: tuple[int, int, int, int], colour: tuple[int, int, int] = (0, 0, 255)
) -> Image.Image:
    tpl = Image.new("RGBA", size, (*colour, 255))
    tpl.paste((0, 0, 0, 0), window)
    return tpl


def quadrants(size: int) -> Image.Image:
    half = size // 2
    img = Image.new("RGB", (size, size), RED)
    img.paste(GREEN, (half, 0, size, half))
    img.paste((255, 255, 0), (0, half, half, size))
    img.paste((255, 0, 255), (half, half, size, size))
    return img


def test_frame_shows_scaled_photo_in_window_and_template_outside() -> None:
    tpl = window_template((300, 200), (100, 50, 200, 150))
    out = local_ops.frame(quadrants(50), tpl, x=100, y=50, scale=2)
    assert out.size == (300, 200)
    assert out.mode == "RGB"  # fully covered: no transparency left
    assert close_to(px(out, (110, 60)), RED)
    assert close_to(px(out, (190, 60)), GREEN)
    assert close_to(px(out, (110, 140)), (255, 255, 0))
    assert close_to(px(out, (190, 140)), (255, 0, 255))
    for xy in [(0, 0), (99, 100), (200, 100), (150, 49), (150, 150), (299, 199)]:
        assert px(out, xy) == (0, 0, 255), xy


def test_frame_photo_partly_outside_canvas_maps_pixels_exactly() -> None:
    photo = gradient(120, 100)
    tpl = window_template((80, 60), (0, 0, 60, 40), colour=(10, 20, 30))
    out = local_ops.frame(photo, tpl, x=-30, y=-25, scale=1)
    for x, y in [(0, 0), (59, 39), (20, 10), (45, 33)]:
        assert px(out, (x, y)) == px(photo, (x + 30, y + 25))
    assert px(out, (70, 50)) == (10, 20, 30)


def test_frame_scaled_offset_photo_uses_the_right_source_region() -> None:
    photo = gradient(100, 100)
    tpl = window_template((60, 60), (0, 0, 60, 60))
    out = local_ops.frame(photo, tpl, x=-150, y=-90, scale=3)
    # canvas (cx, cy) shows scaled pixel (cx + 150, cy + 90), i.e. source ((cx + 150) / 3, (cy + 90) / 3)
    for cx, cy in [(0, 0), (30, 30), (59, 59)]:
        expected = px(photo, (int((cx + 150) / 3), int((cy + 90) / 3)))
        assert close_to(px(out, (cx, cy)), expected, tol=8), (cx, cy)


def test_frame_uncovered_window_stays_transparent() -> None:
    tpl = window_template((100, 100), (10, 10, 90, 90))
    out = local_ops.frame(Image.new("RGB", (20, 20), RED), tpl, x=10, y=10, scale=1)
    assert out.mode == "RGBA"
    assert px(out, (15, 15)) == (*RED, 255)
    assert px(out, (60, 60))[3] == 0
    assert px(out, (5, 5)) == (0, 0, 255, 255)


def test_frame_photo_entirely_off_canvas_is_not_drawn() -> None:
    tpl = window_template((50, 50), (0, 0, 50, 50))
    out = local_ops.frame(Image.new("RGB", (20, 20), RED), tpl, x=500, y=-500, scale=1)
    assert out.getchannel("A").getextrema() == (0, 0)


def test_frame_template_without_alpha_covers_the_photo() -> None:
    tpl = Image.new("RGB", (60, 40), (9, 99, 199))
    out = local_ops.frame(Image.new("RGB", (60, 40), RED), tpl, x=0, y=0, scale=1)
    assert out.size == (60, 40)
    assert out.getcolors() == [(60 * 40, (9, 99, 199))]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_frame_accepts_all_input_modes(mode: str) -> None:
    if mode == "P":  # palette template whose window is the transparent palette entry
        tpl = Image.new("P", (40, 40), 1)
        tpl.putpalette([0, 0, 0, 0, 0, 255])
        tpl.paste(0, (10, 10, 30, 30))
        tpl.info["transparency"] = 0
    else:
        tpl = window_template((40, 40), (10, 10, 30, 30), colour=(0, 0, 255))
    photo = in_mode(Image.new("RGB", (40, 40), (200, 200, 200)), mode)
    out = local_ops.frame(photo, tpl, x=0, y=0, scale=1)
    assert out.size == (40, 40)
    assert close_to(px(out, (20, 20))[:3], (200, 200, 200), tol=2)
    assert px(out, (2, 2))[:3] == (0, 0, 255)


def test_frame_rejects_non_positive_scale() -> None:
    with pytest.raises(ValueError):
        local_ops.frame(Image.new("RGB", (4, 4)), Image.new("RGBA", (4, 4)), 0, 0, 0)


# --- white balance -------------------------------------------------------------------------------------


def red_cast(width: int = 120, height: int = 80) -> Image.Image:
    img = Image.new("RGB", (width, height))
    data = []
    for y in range(height):
        for x in range(width):
            v = 40 + (x * 120 // width + y * 40 // height) // 2 * 2
            data.append((min(255, round(v * 1.5)), v, round(v * 0.8)))
    img.putdata(data)
    return img


def spread(img: Image.Image, mask: Image.Image | None = None) -> float:
    means = ImageStat.Stat(img.convert("RGB"), mask).mean
    return max(means) - min(means)


def test_white_balance_neutralises_red_cast() -> None:
    src = red_cast()
    assert spread(src) > 40
    out = local_ops.white_balance(src, strength=1.0)
    assert out.size == src.size
    assert spread(out) < 1.0
    # overall brightness is preserved (the target is the mean of the three channel means)
    assert abs(sum(ImageStat.Stat(out).mean) - sum(ImageStat.Stat(src).mean)) < 3


def test_white_balance_default_strength_is_full() -> None:
    assert spread(local_ops.white_balance(red_cast())) < 1.0


def test_white_balance_strength_zero_is_unchanged() -> None:
    src = red_cast()
    assert local_ops.white_balance(src, strength=0.0).tobytes() == src.tobytes()


def test_white_balance_half_strength_is_in_between() -> None:
    src = red_cast()
    half = spread(local_ops.white_balance(src, strength=0.5))
    assert 1.0 < half < spread(src) - 10
    assert abs(half - spread(src) / 2) < 3


def test_white_balance_rgba_keeps_alpha_and_ignores_transparent_pixels() -> None:
    src = red_cast().convert("RGBA")
    src.paste((0, 0, 255, 0), (0, 0, 60, 80))  # transparent pure blue must not skew the means
    out = local_ops.white_balance(src)
    assert out.mode == "RGBA"
    assert out.getchannel("A").tobytes() == src.getchannel("A").tobytes()
    assert spread(out, out.getchannel("A")) < 1.0


@pytest.mark.parametrize("mode", ["L", "P"])
def test_white_balance_accepts_l_and_p(mode: str) -> None:
    src = in_mode(red_cast(), mode)
    out = local_ops.white_balance(src)
    assert out.size == src.size and out.mode in ("RGB", "RGBA")
    assert spread(out) < 2.0


# --- resize --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "mode", "upscale", "expected"),
    [
        (100, 100, "fit", True, (100, 50)),
        (200, None, "fit", True, (200, 100)),
        (None, 100, "fit", True, (200, 100)),
        (1000, 120, "fit", True, (240, 120)),
        (800, None, "fit", True, (800, 400)),
        (800, None, "fit", False, (400, 200)),
        (1000, 1000, "fit", False, (400, 200)),
        (100, 100, "fill", True, (100, 100)),
        (300, 50, "fill", True, (300, 50)),
        (1000, 1000, "fill", True, (1000, 1000)),
        (200, None, "fill", True, (200, 100)),
        (None, 50, "fill", True, (100, 50)),
        (100, 100, "fill", False, (100, 100)),
        (1000, 1000, "fill", False, (200, 200)),
        (1000, 250, "fill", False, (400, 100)),
        (123, 321, "stretch", True, (123, 321)),
        (100, None, "stretch", True, (100, 50)),
        (None, 300, "stretch", True, (600, 300)),
        (800, 100, "stretch", False, (400, 100)),
        (None, 300, "stretch", False, (400, 200)),
    ],
)
def test_resize_sizes(
    width: int | None, height: int | None, mode: str, upscale: bool, expected: tuple[int, int]
) -> None:
    out = local_ops.resize(gradient(400, 200), width, height, mode=mode, upscale=upscale)
    assert out.size == expected


def test_resize_defaults_are_fit_with_upscale() -> None:
    assert local_ops.resize(gradient(40, 20), 80, 80).size == (80, 40)


def test_resize_fill_crops_the_centre() -> None:
    out = local_ops.resize(bands(400, 200, 60), 100, 100, mode="fill")  # shows source x 100..300
    for xy in [(0, 0), (99, 0), (0, 99), (99, 99), (50, 50)]:
        assert close_to(px(out, xy), GREEN), xy


def test_resize_stretch_distorts_content() -> None:
    out = local_ops.resize(bands(400, 200, 100), 40, 400, mode="stretch")
    assert close_to(px(out, (2, 200)), RED)
    assert close_to(px(out, (20, 200)), GREEN)
    assert close_to(px(out, (37, 200)), BLUE)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_resize_accepts_all_input_modes(mode: str) -> None:
    out = local_ops.resize(in_mode(gradient(64, 32), mode), 32, None)
    assert out.size == (32, 16)
    assert out.mode in ("RGB", "RGBA")


@pytest.mark.parametrize(("width", "height", "mode"), [(None, None, "fit"), (10, 10, "zoom"), (0, 10, "fit")])
def test_resize_rejects_bad_arguments(width: int | None, height: int | None, mode: str) -> None:
    with pytest.raises(ValueError):
        local_ops.resize(gradient(10, 10), width, height, mode=mode)


# --- encode / decode -----------------------------------------------------------------------------------


def test_encode_jpeg_is_decodable() -> None:
    data, mime = codec.encode(Image.new("RGB", (30, 20), RED), "jpeg", 90)
    assert mime == "image/jpeg"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and img.size == (30, 20) and img.mode == "RGB"
        assert close_to(px(img, (15, 10)), RED)


def test_encode_jpeg_flattens_alpha_on_white() -> None:
    src = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    src.paste((0, 0, 255, 255), (0, 0, 20, 40))
    data, _ = codec.encode(src, "jpeg", 95)
    with Image.open(io.BytesIO(data)) as img:
        assert close_to(px(img, (32, 20)), (255, 255, 255))
        assert close_to(px(img, (8, 20)), BLUE)


def test_encode_jpeg_quality_changes_size() -> None:
    src = gradient(200, 200)
    assert len(codec.encode(src, "jpeg", 10)[0]) < len(codec.encode(src, "jpeg", 95)[0])


def test_encode_png_is_lossless_and_keeps_alpha() -> None:
    src = gradient(50, 30).convert("RGBA")
    src.putpixel((3, 4), (1, 2, 3, 77))
    data, mime = codec.encode(src, "png", 92)
    assert mime == "image/png"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.mode == "RGBA"
        assert img.tobytes() == src.tobytes()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_png_is_the_same_image_by_libvips_or_by_pillow_and_carries_no_metadata_chunk(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = gradient(70, 50).convert(mode)
    by_vips, _ = codec.encode(src, "png", 92)
    monkeypatch.setattr(vips, "load", lambda: None)  # a platform without libvips: Pillow writes it
    by_pillow, _ = codec.encode(src, "png", 92)
    for data in (by_vips, by_pillow):
        assert b"pHYs" not in data and b"tEXt" not in data
        with Image.open(io.BytesIO(data)) as img:
            assert img.mode == mode and img.tobytes() == src.tobytes()


def test_encode_keeps_a_grey_png_one_channel_and_a_grey_jpeg_rgb() -> None:
    mask = gradient(40, 20).convert("L")  # a mask: smart_mask's result
    data, mime = codec.encode(mask, "png", 92)
    with Image.open(io.BytesIO(data)) as img:
        assert (mime, img.mode) == ("image/png", "L")
        assert img.tobytes() == mask.tobytes()
    one_bit, _ = codec.encode(mask.convert("1"), "png", 92)  # another grey-ish mode is not kept as it is
    with Image.open(io.BytesIO(one_bit)) as img:
        assert img.mode == "RGB"
    data, _ = codec.encode(mask, "jpeg", 92)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "RGB"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_encode_accepts_all_input_modes(mode: str, fmt: str) -> None:
    data, _ = codec.encode(in_mode(gradient(16, 16), mode), fmt, 80)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == fmt.upper() and img.size == (16, 16)


def test_encode_rejects_unknown_format() -> None:
    with pytest.raises(ValueError):
        codec.encode(Image.new("RGB", (4, 4)), "gif", 80)


def test_decode_applies_exif_orientation_6() -> None:
    src = Image.new("RGB", (40, 20), RED)
    src.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    src.save(buf, "JPEG", quality=95, exif=exif)
    img = codec.decode(buf.getvalue())
    assert img.size == (20, 40)
    assert close_to(px(img, (10, 5)), RED)  # the left edge ends up on top
    assert close_to(px(img, (10, 35)), BLUE)


def encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("img", "fmt", "expected_mode"),
    [
        (Image.new("RGB", (8, 8), RED), "PNG", "RGB"),
        (Image.new("L", (8, 8), 128), "PNG", "RGB"),
        (Image.new("LA", (8, 8), (128, 100)), "PNG", "RGBA"),
        (Image.new("RGBA", (8, 8), (1, 2, 3, 4)), "PNG", "RGBA"),
        (Image.new("RGB", (8, 8), RED).convert("P"), "PNG", "RGB"),
        (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", "RGB"),
    ],
)
def test_decode_normalises_modes(img: Image.Image, fmt: str, expected_mode: str) -> None:
    out = codec.decode(encoded(img, fmt))
    assert out.mode == expected_mode and out.size == (8, 8)


def test_decode_palette_with_transparency_becomes_rgba() -> None:
    src = Image.new("P", (8, 8), 1)
    src.putpalette([0, 0, 0, 255, 0, 0])
    out = codec.decode(encoded(src, "PNG", transparency=0))
    assert out.mode == "RGBA"
    assert px(out, (0, 0)) == (255, 0, 0, 255)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image",
        encoded(gradient(64, 64), "JPEG")[:300],
        encoded(gradient(64, 64), "PNG")[: len(encoded(gradient(64, 64), "PNG")) // 2],
    ],
)
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(codec.UndecodableImageError):
        codec.decode(data)
