"""The cheap checks ingest makes on a streamed photo (boothbridge.images.upload): the type from the first bytes,
the size from the header alone, the pixel limit, and whether a JPEG or PNG ends as a whole one does."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from boothbridge.errors import AppError
from boothbridge.images.upload import (
    HEADER_BYTES,
    TAIL_BYTES,
    accepted_type,
    header_info,
    inspect_image,
    looks_whole,
)


def encoded(fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 210)).save(buf, fmt)
    return buf.getvalue()


def with_big_app_segments(jpeg: bytes, count: int) -> bytes:
    """The JPEG with `count` 64 KiB APP1 segments before its frame header (as a camera's EXIF, XMP, MPF...)."""
    segment = b"\xff\xe1" + struct.pack(">H", 65535) + bytes(65533)
    return jpeg[:2] + segment * count + jpeg[2:]


def test_the_type_is_sniffed_from_the_first_bytes_and_refused_unless_accepted() -> None:
    assert accepted_type(encoded("JPEG")[:12], ("image/jpeg",)) == "image/jpeg"
    with pytest.raises(AppError) as refused:
        accepted_type(b"GIF89a\x00\x00", ("image/jpeg", "image/png"))
    assert (refused.value.status, refused.value.code) == (415, "unsupported_media_type")
    assert refused.value.details == {"detected": "image/gif", "accepted": ["image/jpeg", "image/png"]}


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_whole_jpeg_or_png_looks_whole_and_a_cut_one_does_not(fmt: str) -> None:
    data = encoded(fmt)
    mime = f"image/{fmt.lower()}"
    assert looks_whole(mime, data[-TAIL_BYTES:])
    assert not looks_whole(mime, data[:-1][-TAIL_BYTES:])
    assert not looks_whole(mime, (data + b"\x00")[-TAIL_BYTES:])  # bytes after the end: the full check decides
    assert not looks_whole("image/webp", data[-TAIL_BYTES:])  # other types are always checked in full


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_size_comes_from_the_header_alone(fmt: str) -> None:
    data = encoded(fmt, (1600, 900))
    info = header_info(data[:HEADER_BYTES], f"image/{fmt.lower()}", 10_000_000, whole=True)
    assert info is not None and (info.width, info.height) == (1600, 900)
    # The header is all it needs: the compressed data may be cut, or broken, without it noticing.
    cut = header_info(data[:2000], f"image/{fmt.lower()}", 10_000_000, whole=False)
    assert cut is not None and (cut.width, cut.height) == (1600, 900)


def test_a_header_past_the_first_bytes_is_left_to_the_full_check() -> None:
    data = with_big_app_segments(encoded("JPEG"), 5)  # 320 KiB of APP1 before the frame header
    assert header_info(data[:HEADER_BYTES], "image/jpeg", 10_000_000, whole=False) is None
    assert inspect_image(data, ("image/jpeg",), 10_000_000).width == 640  # which finds it


def test_too_many_pixels_is_422_before_any_pixel_is_decoded() -> None:
    with pytest.raises(AppError) as refused:
        header_info(encoded("PNG", (2500, 2000))[:HEADER_BYTES], "image/png", 4_000_000, whole=True)
    assert (refused.value.status, refused.value.code) == (422, "image_too_many_pixels")
    assert refused.value.details == {"max_pixels": 4_000_000, "width": 2500, "height": 2000}


def test_a_whole_file_without_a_readable_header_is_undecodable() -> None:
    with pytest.raises(AppError) as refused:
        header_info(b"\xff\xd8\xff\xe0garbage\xff\xd9", "image/jpeg", 4_000_000, whole=True)
    assert (refused.value.status, refused.value.code) == (422, "image_undecodable")
    assert header_info(b"\xff\xd8\xff\xe0garbage", "image/jpeg", 4_000_000, whole=False) is None


def test_a_camera_jpeg_with_further_images_is_checked_at_one_eighth_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JPEG with an MPF index of further images (Pillow's MPO) is a JPEG: its check decodes it at 1/8 scale, as
    every JPEG's (it was decoded whole; the twin of the local provider's decode, found in review)."""
    from PIL.JpegImagePlugin import JpegImageFile

    out = io.BytesIO()
    Image.new("RGB", (1600, 1200), (90, 120, 150)).save(
        out, "MPO", save_all=True, append_images=[Image.new("RGB", (320, 240))], quality=90
    )
    asked: list[tuple[int, int]] = []
    draft = JpegImageFile.draft

    def recorded(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        asked.append(size or (0, 0))
        return draft(self, mode, size)

    monkeypatch.setattr(JpegImageFile, "draft", recorded)
    info = inspect_image(out.getvalue(), ("image/jpeg",), 4_000_000)
    assert (info.mime, info.width, info.height) == ("image/jpeg", 1600, 1200)
    assert asked == [(200, 150)]
