"""Decoding and encoding images for the operations that work on pixels (the `local` provider's, a provider's
format conversion): bytes in, a normalised Pillow image out, and back; no I/O.

`decode` gives what the image boundary's `normalise` gives (upright, sRGB, 8-bit RGB or RGBA) and raises the
boundary's `UndecodableImageError`; `encode` writes JPEG (alpha flattened on white) or PNG without metadata.

`encode_result` marks what an in-process provider encoded here as `EncodedHere`: bytes our own encoder wrote from
normalised pixels, which the image boundary would pass on as they are (`accepted_as_is`), so the worker need not
decode them again. Only this module can make one; an external provider's bytes never carry the mark.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from boothbridge.images import boundary as image_boundary
from boothbridge.images.boundary import UndecodableImageError
from boothbridge.providers.base import ImageInput

_MIME = {"jpeg": "image/jpeg", "png": "image/png"}
_MADE_HERE = object()  # the proof an `EncodedHere` was made by `encoded_here`, not by hand


@dataclass(frozen=True)
class EncodedHere(ImageInput):
    """JPEG or PNG bytes written in this process from width x height normalised pixels, with no metadata (not even
    an ICC profile): exactly what `image_boundary.accept_result` returns for them. Made only by `encoded_here`."""

    width: int = 0
    height: int = 0
    proof: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.proof is not _MADE_HERE:
            raise TypeError("only boothbridge.images.codec makes an EncodedHere")


def encoded_here(data: bytes, mime: str, size: tuple[int, int]) -> EncodedHere:
    """Mark bytes an in-process engine encoded from normalised pixels without any metadata (the `local` provider's
    libvips path, `encode_result`). The caller vouches for that; nothing from outside this process may come here."""
    return EncodedHere(data, mime, size[0], size[1], _MADE_HERE)


def encode_result(img: Image.Image, fmt: str, quality: int) -> ImageInput:
    """`encode`, marked `EncodedHere` when `img` carries no metadata an encoder could copy (its `info` is empty, as
    after `decode` and the local operations); otherwise a plain `ImageInput` that the boundary normalises."""
    data, mime = encode(img, fmt, quality)
    if img.info:
        return ImageInput(data, mime)
    return encoded_here(data, mime, img.size)


def accepted_as_is(image: ImageInput, output_format: str | None, max_pixels: int) -> bool:
    """Whether `image` may skip `image_boundary.accept_result` for a slot wanting `output_format` (None: as
    delivered): made here, already in that format, and within the pixel limit (else the boundary refuses it)."""
    return (
        isinstance(image, EncodedHere)
        and (output_format is None or _MIME.get(output_format) == image.mime)
        and image.width * image.height <= max_pixels
    )


def to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    """Return `img` as RGB, or RGBA when it carries transparency (alpha band or palette transparency)."""
    if img.mode in ("RGB", "RGBA"):
        return img
    has_alpha = "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else "RGB")


def encode(img: Image.Image, fmt: str, quality: int) -> tuple[bytes, str]:
    """Encode as "jpeg" (RGB, alpha flattened on white) or "png" (RGB, RGBA, or grey "L" as given) without metadata;
    return the bytes and MIME type."""
    fmt = fmt.lower()
    if fmt not in _MIME:
        raise ValueError(f"unsupported output format {fmt!r}")
    # A grey PNG (a mask) stays one channel: a third of the bytes, and what mask consumers expect.
    keep_grey = fmt == "png" and img.mode == "L" and "transparency" not in img.info
    out = image_boundary.encode(img if keep_grey else to_rgb_or_rgba(img), fmt, quality)
    return out.data, out.mime


def upright_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the image as `decode` returns it (EXIF orientation applied), from its header; None when
    Pillow cannot open it (`decode` then reports why)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return _upright(img, img.size)
    except Exception:
        return None


def _upright(img: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    """`size` as seen after `img`'s EXIF orientation is applied (or before: the swap is its own inverse)."""
    return (size[1], size[0]) if image_boundary.orientation(img) in image_boundary.SWAPS_SIDES else size


def decode(data: bytes, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Open and fully load image bytes and return them through the image boundary's `normalise`: upright, sRGB,
    8-bit RGB or RGBA (a 16-bit grey stays grey instead of clipping to white).

    With `min_size` (upright width, height) a JPEG is decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale that is
    still at least that large (libjpeg's DCT scaling, Pillow's `draft`): the caller asks for twice what it will
    resample to, so the final LANCZOS step keeps its quality. Other formats ignore it.

    A JPEG that lacks only its final end-of-image marker (ingest accepts one whose scans are complete, see
    `boothbridge.images.upload.jpeg_lacks_only_eoi`) is decoded with the marker restored: libjpeg cannot finish the
    last row of blocks without it, and Pillow then calls the file truncated."""

    def load(candidate: bytes) -> Image.Image:
        # Not closed on purpose: `normalise` may hand back the opened image itself (no copy of a 60 MP photo);
        # its only resource is the in-memory buffer, released with it.
        opened = Image.open(io.BytesIO(candidate))
        # A camera JPEG with an MPF index of further images (previews, gain maps) opens as MPO: a JPEG still.
        if min_size is not None and isinstance(opened, JpegImageFile):
            opened.draft(opened.mode, _upright(opened, min_size))
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
