"""A JPEG that lacks only its final end-of-image marker (FF D9) is a whole image; a JPEG cut off anywhere else
is not. Tables of cut offsets over real baseline and progressive JPEGs: exactly the cuts that remove the EOI
(or half of it) are accepted, and they decode to the same pixels as the complete file."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from boothbridge.errors import AppError
from boothbridge.images import codec
from boothbridge.images import upload as images
from boothbridge.images.upload import JPEG_EOI, inspect_image, jpeg_lacks_only_eoi
from tests.support.booth import jpeg

ACCEPT = ("image/jpeg", "image/png")
PLENTY = 100_000_000


def textured(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Every pixel different (an XOR pattern with ramps), so the entropy-coded data is dense everywhere."""
    img = Image.new("RGB", (width, height))
    img.putdata(
        [
            (((x * 7 + y * 3) ^ (x * y)) & 255, (x * 5 + y) & 255, (x + y * 9) & 255)
            for y in range(height)
            for x in range(width)
        ]
    )
    return img.convert(mode)


def encode(img: Image.Image, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **options)
    data = buf.getvalue()
    assert data.endswith(JPEG_EOI)
    return data


# Small enough that every cut offset can be tried; together they cover the ways a scan can end.
SMALL = {
    "baseline 4:2:0": encode(textured(40, 24), quality=85),
    "baseline 4:4:4 q100": encode(textured(32, 24), quality=100, subsampling=0),
    "optimized huffman": encode(textured(40, 24), quality=85, optimize=True),
    "greyscale": encode(textured(40, 24, "L"), quality=85),
    "cmyk": encode(textured(24, 16, "CMYK"), quality=85),
    "restart markers": encode(textured(48, 32), quality=85, restart_marker_blocks=2),
    "progressive": encode(textured(40, 24), quality=85, progressive=True),
    "progressive greyscale": encode(textured(40, 24, "L"), quality=85, progressive=True),
    "progressive 4:4:4 restarts": encode(
        textured(32, 24), quality=95, progressive=True, subsampling=0, restart_marker_rows=1
    ),
}


def verdict(data: bytes, max_pixels: int = PLENTY) -> str:
    try:
        inspect_image(data, ACCEPT, max_pixels)
    except AppError as exc:
        return exc.code
    return "ok"


def marker_offsets(data: bytes) -> list[int]:
    """Offsets of every marker outside entropy-coded data's stuffing (FF 00) — the places a cut right before
    or right after a marker lands."""
    return [m.start() for m in re.finditer(rb"\xff[^\x00\xff]", data)]


def test_the_reported_input_a_booth_jpeg_without_its_eoi_is_accepted_and_decodes_to_the_full_image() -> None:
    complete = jpeg(640, 480)
    without_eoi = complete[:-2]
    assert verdict(complete) == "ok"
    info = inspect_image(without_eoi, ACCEPT, PLENTY)
    assert (info.mime, info.width, info.height) == ("image/jpeg", 640, 480)
    assert jpeg_lacks_only_eoi(without_eoi)
    assert codec.decode(without_eoi).tobytes() == codec.decode(complete).tobytes()


@pytest.mark.parametrize("name", list(SMALL))
def test_every_cut_offset_only_the_eoi_may_be_missing(name: str) -> None:
    data = SMALL[name]
    wrongly = {cut: verdict(data[:cut]) for cut in range(len(data) + 1)}
    accepted = sorted(cut for cut, code in wrongly.items() if code == "ok")
    # The whole file, without its EOI, and without the EOI's second byte (the FF left over is a fill byte).
    assert accepted == [len(data) - 2, len(data) - 1, len(data)], name
    refused = {code for cut, code in wrongly.items() if cut < len(data) - 2}
    assert refused <= {"image_undecodable", "unsupported_media_type"}, refused  # under 3 bytes: no JPEG magic
    full = codec.decode(data).tobytes()
    assert codec.decode(data[:-2]).tobytes() == full
    assert codec.decode(data[:-1]).tobytes() == full


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_cuts_at_every_marker_mid_scan_and_just_before_the_eoi_of_a_booth_sized_photo(progressive: bool) -> None:
    img = Image.open(io.BytesIO(jpeg(640, 480)))
    data = encode(img, quality=92, progressive=progressive)
    end = len(data)
    cuts = set(range(end - 40, end - 2))  # the last bytes of the last scan
    for offset in marker_offsets(data):
        cuts.update({offset, offset + 1, offset + 2, offset + 4})  # before, inside and right after each marker
    cuts.update(range(3, end - 2, 997))  # mid-scan, mid-header, everywhere
    cuts = {cut for cut in cuts if 3 <= cut < end - 2}
    accepted = [cut for cut in sorted(cuts) if verdict(data[:cut]) != "image_undecodable"]
    assert accepted == []
    assert verdict(data[: end - 2]) == "ok"
    assert verdict(data[: end - 1]) == "ok"


def test_a_progressive_jpeg_cut_between_two_scans_is_refused_although_libjpeg_does_not_warn() -> None:
    # libjpeg decodes the scans it got without a warning (a blurrier image): the strict decoder alone would take
    # it, so the scans' coverage of every coefficient is what refuses it.
    data = SMALL["progressive"]
    scan_starts = [m.start() for m in re.finditer(rb"\xff\xda", data)]
    assert len(scan_starts) > 2
    for sos in scan_starts[1:]:
        boundary = data.rfind(b"\xff\xc4", 0, sos)  # a scan's tables come right before it, if any
        cut = boundary if boundary > scan_starts[0] and data.find(b"\xff\xda", boundary) == sos else sos
        prefix = data[:cut]
        assert images._jpeg_entropy_complete(prefix + JPEG_EOI)
        assert not jpeg_lacks_only_eoi(prefix)
        assert verdict(prefix) == "image_undecodable"


def test_the_pixel_limit_still_applies_to_a_jpeg_without_its_eoi() -> None:
    without_eoi = jpeg(640, 480)[:-2]
    assert verdict(without_eoi, max_pixels=640 * 480 - 1) == "image_too_many_pixels"
    assert verdict(without_eoi, max_pixels=640 * 480) == "ok"


def test_local_ops_restores_the_eoi_but_still_refuses_what_it_cannot_decode() -> None:
    complete = jpeg(320, 240)
    with pytest.raises(codec.UndecodableImageError):
        codec.decode(complete[:400])  # cut inside the header: the restored EOI does not help
    assert codec.decode(complete[:-2]).size == (320, 240)
