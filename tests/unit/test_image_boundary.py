"""The image boundary (boothbridge.images.boundary), no I/O: what every provider receives and what is accepted back.

Field faults this covers: a 16-bit greyscale PNG came back white (right: mid-grey, 78 of 255); a sideways-stored
portrait reached Gemini with its orientation tag; a provider's declared type was trusted.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from boothbridge.images.boundary import (
    TooManyPixelsError,
    UndecodableImageError,
    UnencodableImageError,
    accept_result,
    prepare_input,
    strip_jpeg_metadata,
    strip_png_metadata,
)
from tests.support.images import (
    ORIENTATION,
    PERSONAL_MARKERS,
    camera_jpeg,
    encoded,
    linear_profile_named_srgb,
    png16,
    png_header_only,
    srgb_profile,
    swapped_red_green_profile,
    two_tone,
)

LIMIT = 100_000_000


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def grey_of(data: bytes) -> int:
    img = opened(data)
    assert img.mode in ("RGB", "RGBA"), img.mode
    pixel = img.getpixel((img.width // 2, img.height // 2))
    assert isinstance(pixel, tuple)
    assert pixel[0] == pixel[1] == pixel[2], pixel
    return int(pixel[0])


# ---- bit depth and mode ------------------------------------------------------------------------------------


def test_sixteen_bit_greyscale_png_is_mid_grey_not_white() -> None:
    """The reported input: 800x600, mode I;16, every pixel 20000 of 65535 -> 20000 / 257 = 77.8 -> 78."""
    source = encoded(Image.new("I;16", (800, 600), 20000), "PNG")
    assert opened(source).mode == "I;16"
    out = prepare_input(source, LIMIT)
    assert out.mime == "image/png"
    assert grey_of(out.data) == 78
    assert opened(out.data).size == (800, 600)


@pytest.mark.parametrize(
    ("colour_type", "mode"), [(0, "RGB"), (2, "RGB"), (4, "RGBA"), (6, "RGBA")], ids=["grey", "rgb", "la", "rgba"]
)
def test_sixteen_bit_pngs_of_every_colour_type_become_eight_bit(colour_type: int, mode: str) -> None:
    out = prepare_input(png16(64, 48, 20000, colour_type), LIMIT)
    assert out.data[24] == 8, "IHDR bit depth"
    assert opened(out.data).mode == mode
    assert grey_of(out.data) == 78


@pytest.mark.parametrize(
    ("img", "expected"),
    [
        (Image.new("I", (40, 30), 20000), 78),  # 32-bit integer holding 16-bit data
        (Image.new("I", (40, 30), 2**30), 128),  # signed 32-bit range: 2^30 / (2^31 - 1) x 255
        (Image.new("F", (40, 30), 0.3), 77),  # float in 0..1: 0.3 x 255 = 76.5
        (Image.new("F", (40, 30), 200.0), 200),  # float stored unscaled 0..255
    ],
    ids=["int32-16bit-data", "int32-full-range", "float-unit", "float-255"],
)
def test_integer_and_float_greyscale_are_scaled_by_their_range(img: Image.Image, expected: int) -> None:
    out = prepare_input(encoded(img, "TIFF"), LIMIT)
    assert grey_of(out.data) == expected


def test_palette_png_with_transparency_keeps_it_as_alpha() -> None:
    img = Image.new("P", (20, 10), 1)
    img.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    img.paste(0, (0, 0, 10, 10))
    out = prepare_input(encoded(img, "PNG", transparency=0), LIMIT)
    result = opened(out.data)
    assert result.mode == "RGBA"
    assert result.getpixel((2, 2))[3] == 0  # type: ignore[index]
    assert result.getpixel((15, 5)) == (250, 10, 10, 255)


def test_la_and_cmyk_become_rgba_and_rgb() -> None:
    la = prepare_input(encoded(Image.new("LA", (8, 8), (100, 128)), "PNG"), LIMIT)
    assert opened(la.data).getpixel((1, 1)) == (100, 100, 100, 128)
    cmyk = prepare_input(encoded(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG"), LIMIT)
    assert opened(cmyk.data).mode == "RGB"
    assert min(opened(cmyk.data).getpixel((1, 1))) > 240  # type: ignore[type-var]


# ---- orientation -------------------------------------------------------------------------------------------


def test_portrait_stored_sideways_is_sent_upright_without_the_tag() -> None:
    """The reported input: 1200x800 with EXIF Orientation 6 (rotate 90 degrees clockwise to display)."""
    out = prepare_input(camera_jpeg(1200, 800, orientation=6), LIMIT)
    img = opened(out.data)
    assert img.size == (800, 1200)
    assert ORIENTATION not in img.getexif()
    # The stored image's left half (red) is the displayed image's top half.
    top, bottom = img.getpixel((400, 100)), img.getpixel((400, 1100))
    assert top[0] > 180 and top[1] < 60, top  # type: ignore[index]
    assert bottom[1] > 160 and bottom[0] < 60, bottom  # type: ignore[index]


@pytest.mark.parametrize(("orientation", "size"), [(3, (120, 80)), (8, (80, 120)), (5, (80, 120))])
def test_every_orientation_is_applied(orientation: int, size: tuple[int, int]) -> None:
    out = prepare_input(camera_jpeg(120, 80, orientation=orientation), LIMIT)
    img = opened(out.data)
    assert img.size == size
    assert ORIENTATION not in img.getexif()
    upright = opened(prepare_input(camera_jpeg(120, 80, orientation=1), LIMIT).data)
    expected = {3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_90, 5: Image.Transpose.TRANSPOSE}
    reference = upright.transpose(expected[orientation])
    corner = (5, 5)
    assert abs(img.getpixel(corner)[0] - reference.getpixel(corner)[0]) < 30  # type: ignore[index]


def test_orientation_in_a_png_exif_chunk_is_applied_too() -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    out = prepare_input(encoded(two_tone(60, 40), "PNG", exif=exif.tobytes()), LIMIT)
    assert opened(out.data).size == (40, 60)


# ---- colour ------------------------------------------------------------------------------------------------


def test_a_foreign_icc_profile_is_converted_to_srgb() -> None:
    """Red pixels in a profile whose red is sRGB's green must arrive green; dropping the profile leaves them red."""
    out = prepare_input(camera_jpeg(120, 80, icc=swapped_red_green_profile()), LIMIT)
    img = opened(out.data)
    assert "icc_profile" not in img.info
    left = img.getpixel((10, 40))
    assert left[1] > 180 and left[0] < 60, left  # type: ignore[index]


def test_an_srgb_tagged_clean_jpeg_keeps_its_compressed_data() -> None:
    source = camera_jpeg(120, 80, icc=srgb_profile())
    out = prepare_input(source, LIMIT)
    assert out.changes == ("metadata",)
    assert out.mime == "image/jpeg"
    scan = source.index(b"\xff\xda")
    assert out.data.endswith(source[scan:]), "the entropy-coded data is copied byte for byte"
    assert opened(out.data).tobytes() == opened(source).tobytes()


# ---- personal metadata -------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 6], ids=["kept-bytes", "re-encoded"])
def test_personal_metadata_is_not_sent(orientation: int) -> None:
    source = camera_jpeg(200, 100, orientation=orientation)
    assert all(marker in source for marker in PERSONAL_MARKERS)
    out = prepare_input(source, LIMIT)
    assert not [marker for marker in PERSONAL_MARKERS if marker in out.data]
    assert not opened(out.data).getexif()


def test_png_text_and_exif_chunks_are_dropped() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "owner: J. Doe")
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    source = encoded(two_tone(30, 20), "PNG", pnginfo=info, exif=exif.tobytes())
    out = prepare_input(source, LIMIT)
    assert b"owner: J. Doe" not in out.data and b"Canon" not in out.data
    assert opened(out.data).tobytes() == opened(source).tobytes()


def test_strippers_keep_clean_files_and_refuse_what_does_not_parse() -> None:
    clean_jpeg = encoded(two_tone(16, 16), "JPEG")
    clean_png = encoded(two_tone(16, 16), "PNG")
    assert strip_jpeg_metadata(clean_jpeg) == clean_jpeg
    assert strip_png_metadata(clean_png) == clean_png
    assert strip_jpeg_metadata(b"not a jpeg") is None
    assert strip_jpeg_metadata(clean_jpeg[:2] + b"\x00" + clean_jpeg[2:]) is None  # the caller re-encodes
    assert strip_png_metadata(clean_png[:40]) is None


def test_a_jpeg_s_trailing_secondary_image_is_not_sent() -> None:
    """Multi-picture JPEGs (MPF) carry further images after the first one's end marker."""
    source = encoded(two_tone(40, 40), "JPEG") + b"\xff\xd8SECOND-IMAGE-WITH-DEPTH-MAP\xff\xd9"
    out = prepare_input(source, LIMIT)
    assert b"SECOND-IMAGE" not in out.data
    assert opened(out.data).size == (40, 40)


# ---- limits and refusals -----------------------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(TooManyPixelsError):
        prepare_input(png_header_only(30_000, 30_000), LIMIT)
    with pytest.raises(TooManyPixelsError):
        accept_result(png_header_only(30_000, 30_000), None, 92, LIMIT)


def test_non_images_are_refused_at_both_crossings() -> None:
    with pytest.raises(UndecodableImageError):
        prepare_input(b"<html>oops</html>", LIMIT)
    with pytest.raises(UndecodableImageError):
        accept_result(b"<html>oops</html>", None, 92, LIMIT)


# ---- what comes back ---------------------------------------------------------------------------------------


def test_a_jpeg_labelled_png_is_identified_by_its_bytes() -> None:
    jpeg_bytes = encoded(two_tone(64, 48), "JPEG")
    kept = accept_result(jpeg_bytes, None, 92, LIMIT)
    assert kept.mime == "image/jpeg"
    assert kept.data == jpeg_bytes
    as_png = accept_result(jpeg_bytes, "png", 92, LIMIT)
    assert as_png.mime == "image/png"
    assert as_png.data.startswith(b"\x89PNG") and opened(as_png.data).size == (64, 48)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"this is not an image but it starts like one",
        encoded(two_tone(64, 48), "JPEG")[:300],
        encoded(two_tone(64, 48), "PNG")[:-30],
    ],
    ids=["png-signature-then-text", "truncated-jpeg", "truncated-png"],
)
def test_answers_that_do_not_decode_are_refused(data: bytes) -> None:
    with pytest.raises(UndecodableImageError):
        accept_result(data, None, 92, LIMIT)


def test_results_are_normalised_and_converted() -> None:
    webp = accept_result(encoded(two_tone(32, 32), "WEBP"), None, 92, LIMIT)
    assert webp.mime == "image/jpeg"
    deep = accept_result(png16(16, 16, 20000, 0), None, 92, LIMIT)
    assert deep.mime == "image/png" and deep.data[24] == 8 and grey_of(deep.data) == 78
    rgba = accept_result(encoded(Image.new("RGBA", (8, 8), (1, 2, 3, 4)), "PNG"), "jpeg", 80, LIMIT)
    assert rgba.mime == "image/jpeg"
    with pytest.raises(ValueError, match="format"):
        accept_result(encoded(two_tone(8, 8), "PNG"), "gif", 92, LIMIT)


def test_a_jpeg_lacking_only_its_end_marker_crosses_both_ways() -> None:
    """Ingest accepts such a JPEG (its scans are complete); the boundary restores the marker before decoding."""
    whole = camera_jpeg(120, 80, orientation=6)
    assert whole.endswith(b"\xff\xd9")
    upright = prepare_input(whole[:-2], LIMIT)
    assert opened(upright.data).size == (80, 120)
    back = accept_result(whole[:-2], "png", 92, LIMIT)
    assert opened(back.data).size == (80, 120)
    with pytest.raises(UndecodableImageError):
        accept_result(whole[: len(whole) // 2], "png", 92, LIMIT)  # truly cut short


def test_a_profile_that_cannot_be_applied_is_reported_not_silently_dropped(caplog: pytest.LogCaptureFixture) -> None:
    out = prepare_input(camera_jpeg(120, 80, icc=b"not an ICC profile at all" * 8), LIMIT)
    left = opened(out.data).getpixel((10, 40))
    assert left[0] > 180 and left[1] < 60, left  # type: ignore[index]  # the pixels as they were
    assert "ICC profile could not be applied" in caplog.text


# ---- what a hostile tester found (each a member of a kind the boundary must hold) --------------------------


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


GPS = b"GPSSECRET-48.8584N-2.2945E"


@pytest.mark.parametrize(
    "build",
    [
        lambda j, p: j[:2] + _segment(0xE1, b"Exif\x00\x00" + GPS) + b"\x00" + j[2:],  # junk after the segment
        lambda j, p: j[:2] + b"\xff\xe1\x00\x08" + b"Exif\x00\x00" + GPS + j[2:],  # APP1 length declared short
        lambda j, p: (
            p[: p.index(b"\xff\xc4", p.index(b"\xff\xda"))]
            + _segment(0xFE, GPS)
            + p[p.index(b"\xff\xc4", p.index(b"\xff\xda")) :]
        ),
        lambda j, p: j[:20] + _segment(0xE0, b"JFXX\x00\x10" + GPS) + j[20:],  # a JFXX thumbnail
    ],
    ids=["junk-between-segments", "short-app1", "comment-between-progressive-scans", "jfxx-thumbnail"],
)
def test_metadata_never_slips_through_a_malformed_or_unusual_jpeg(build: Any) -> None:
    base = two_tone(64, 48)
    source = build(encoded(base, "JPEG", quality=90), encoded(base, "JPEG", quality=90, progressive=True))
    assert GPS in source
    out = prepare_input(source, LIMIT)
    assert GPS not in out.data
    assert opened(out.data).size == (64, 48)


def test_an_end_marker_inside_a_segment_between_scans_does_not_cut_the_image() -> None:
    progressive = encoded(two_tone(64, 48), "JPEG", quality=90, progressive=True)
    at = progressive.index(b"\xff\xc4", progressive.index(b"\xff\xda"))
    source = progressive[:at] + _segment(0xFE, b"\xff\xd9ab") + progressive[at:]
    out = prepare_input(source, LIMIT)
    assert opened(out.data).tobytes() == opened(progressive).tobytes()


@pytest.mark.parametrize(
    "extra",
    [
        lambda png: png[:33] + _png_chunk(b"prVt", GPS) + png[33:],  # a private chunk
        lambda png: png + _png_chunk(b"tEXt", b"Comment\x00" + GPS),  # text after IEND
        lambda png: png[:33] + _png_chunk(b"acTL", b"\x00\x00\x00\x02\x00\x00\x00\x00") + png[33:] + GPS,  # APNG
    ],
    ids=["private-chunk", "after-iend", "apng-and-trailer"],
)
def test_png_keeps_only_what_decoders_need(extra: Any) -> None:
    png = encoded(two_tone(20, 10), "PNG")
    source = extra(png)
    for out in (prepare_input(source, LIMIT), accept_result(source, None, 92, LIMIT)):
        assert GPS not in out.data and b"acTL" not in out.data
        assert out.data.endswith(b"IEND\xaeB`\x82")


def test_a_png_without_iend_gets_it_back() -> None:
    png = encoded(two_tone(20, 10), "PNG")
    out = accept_result(png[:-12], None, 92, LIMIT)
    assert out.data == png


def test_a_mistyped_exif_tag_does_not_stop_the_orientation() -> None:
    """Orientation 6 next to a Copyright tag stored as RATIONAL: Pillow's exif_transpose fails on such a block."""
    ifd = [(0x0112, 3, 1, struct.pack("<HH", 6, 0)), (0x8298, 5, 1, struct.pack("<I", 38))]
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(ifd))
    tiff += b"".join(struct.pack("<HHI", *entry[:3]) + entry[3] for entry in ifd) + struct.pack("<I", 0)
    tiff += struct.pack("<II", 1, 1)
    plain = encoded(two_tone(64, 32), "JPEG")
    out = prepare_input(plain[:2] + _segment(0xE1, b"Exif\x00\x00" + tiff) + plain[2:], LIMIT)
    assert opened(out.data).size == (32, 64)


def test_a_result_jpeg_cannot_hold_is_unencodable_not_a_crash() -> None:
    wide = encoded(Image.new("RGB", (70_000, 2)), "PNG")
    with pytest.raises(UnencodableImageError):
        accept_result(wide, "jpeg", 92, LIMIT)


def test_srgb_is_judged_by_what_the_profile_does_not_its_name() -> None:
    img = Image.new("RGB", (8, 8), (128, 128, 128))
    out = prepare_input(encoded(img, "PNG", icc_profile=linear_profile_named_srgb()), LIMIT)
    assert "colour" in out.changes
    assert abs(grey_of(out.data) - 188) <= 2


@pytest.mark.parametrize(
    ("img", "expected"),
    [
        (Image.new("I", (8, 8), 2**31 - 1), 255),
        (Image.new("F", (8, 8), float("nan")), 0),
        (Image.new("F", (8, 8), -1.0), 0),
        (Image.new("LAB", (8, 8), (128, 128, 128)), 119),  # L* 50 is a mid grey, not Pillow's channel copy
    ],
    ids=["int32-max", "float-nan", "float-negative", "cielab-mid-grey"],
)
def test_odd_pixel_formats_from_a_provider(img: Image.Image, expected: int) -> None:
    out = accept_result(encoded(img, "TIFF"), None, 92, LIMIT)
    assert abs(grey_of(out.data) - expected) <= 2


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
