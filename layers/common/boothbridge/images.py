"""Inspecting an uploaded photo: the type sniffed from its bytes, a full decode, and a pixel limit."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from boothbridge.errors import AppError

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heif"}


def sniff_mime(data: bytes) -> str | None:
    """The image type from the leading bytes, whatever name or Content-Type the client gave."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/heic"
    return None


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    width: int
    height: int


def inspect_image(data: bytes, allowed_mime: tuple[str, ...], max_pixels: int) -> ImageInfo:
    """Accept only an allowed type that fully decodes within the pixel limit; raise AppError otherwise.

    CPU-bound (a full decode): call it in a worker thread.
    """
    mime = sniff_mime(data)
    if mime is None or mime not in allowed_mime:
        raise AppError(
            415,
            "unsupported_media_type",
            "the file is not an image of an accepted type",
            {"detected": mime or "unknown", "accepted": list(allowed_mime)},
        )
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns (or raises) above its limit; both mean "too many pixels" here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise _too_many_pixels(width, height, max_pixels)
                if img.format == "JPEG":
                    # Decoding at 1/8 scale still walks every entropy-coded block, so truncation and
                    # corruption are caught at a fraction of the cost of a full-size decode.
                    img.draft("RGB", (max(width // 8, 1), max(height // 8, 1)))
                img.load()
    except AppError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise _too_many_pixels(0, 0, max_pixels) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise AppError(
            422, "image_undecodable", "the file could not be decoded as an image (truncated or corrupt)"
        ) from exc
    return ImageInfo(mime=mime, width=width, height=height)


def _too_many_pixels(width: int, height: int, max_pixels: int) -> AppError:
    details: dict[str, object] = {"max_pixels": max_pixels}
    if width and height:
        details.update(width=width, height=height)
    return AppError(422, "image_too_many_pixels", "the image has more pixels than accepted", details)
