"""Decoding and encoding images for the operations that work on pixels (the `local` provider's, a provider's
format conversion): bytes in, a normalised Pillow image out, and back; no I/O.

`decode` gives what the image boundary's `normalise` gives (upright, sRGB, 8-bit RGB or RGBA) and raises the
boundary's `UndecodableImageError`; `encode` writes JPEG (alpha flattened on white) or PNG without metadata.
"""

from __future__ import annotations

import io

from PIL import Image

from boothbridge.images import boundary as image_boundary
from boothbridge.images.boundary import UndecodableImageError

_MIME = {"jpeg": "image/jpeg", "png": "image/png"}


def to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    """Return `img` as RGB, or RGBA when it carries transparency (alpha band or palette transparency)."""
    if img.mode in ("RGB", "RGBA"):
        return img
    has_alpha = "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else "RGB")


def encode(img: Image.Image, fmt: str, quality: int) -> tuple[bytes, str]:
    """Encode as "jpeg" (RGB, alpha flattened on white) or "png" without metadata; return the bytes and MIME type."""
    fmt = fmt.lower()
    if fmt not in _MIME:
        raise ValueError(f"unsupported output format {fmt!r}")
    out = image_boundary.encode(to_rgb_or_rgba(img), fmt, quality)
    return out.data, out.mime


def decode(data: bytes) -> Image.Image:
    """Open and fully load image bytes and return them through the image boundary's `normalise`: upright, sRGB,
    8-bit RGB or RGBA (a 16-bit grey stays grey instead of clipping to white).

    A JPEG that lacks only its final end-of-image marker (ingest accepts one whose scans are complete, see
    `boothbridge.images.upload.jpeg_lacks_only_eoi`) is decoded with the marker restored: libjpeg cannot finish the
    last row of blocks without it, and Pillow then calls the file truncated."""

    def load(candidate: bytes) -> Image.Image:
        # Not closed on purpose: `normalise` may hand back the opened image itself (no copy of a 60 MP photo);
        # its only resource is the in-memory buffer, released with it.
        opened = Image.open(io.BytesIO(candidate))
        opened.load()
        pixels, _ = image_boundary.normalise(opened)
        return pixels

    try:
        return load(data)
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt input (OSError, SyntaxError, ...)
        if data.startswith(b"\xff\xd8") and not data.endswith(b"\xff\xd9"):
            try:
                return load(data + b"\xff\xd9")
            except MemoryError:
                raise
            except Exception:
                pass  # the first failure is the one to report
        raise UndecodableImageError(f"cannot decode image: {exc}") from exc
