"""The one image boundary between boothbridge and every provider (SPEC §2 "What providers receive").

On the way **to** a provider (`prepare_input`), every booth photo and slot template is made:
- upright: the EXIF orientation is applied to the pixels and the tag removed (a model that answers at the size it
  was given must not answer sideways);
- colour-correct: an embedded ICC profile other than sRGB is converted to sRGB with LittleCMS (Pillow's ImageCms),
  since AI services read pixels as sRGB and ignore profiles;
- 8-bit RGB or RGBA: 16-bit and 32-bit integer greyscale, float greyscale, palette (with transparency), LA, CMYK
  and the rest are scaled and converted, never clipped (a 16-bit value 20000 of 65535 becomes 78 of 255);
- free of personal metadata: EXIF (GPS, camera serial, maker notes), XMP, IPTC, comments and a JPEG's trailing
  secondary images are not sent to third parties.
A clean 8-bit JPEG or PNG (upright, sRGB or untagged) keeps its compressed data byte for byte: only its metadata
segments are dropped, so no quality is lost and no time spent. Anything else is decoded once, normalised and
re-encoded (JPEG quality 95 for photos without alpha from a lossy source, PNG otherwise).

On the way **back** (`accept_result`), whatever a provider returns is identified by its bytes (never by the type
it declared), fully decoded before it counts as a result, normalised the same way, and converted when the slot's
`output.format` asks for another format. Bytes that are not a decodable image raise `UndecodableImageError`.

Pure functions over bytes (CPU-bound: call them in a worker thread). Pixel limits are enforced here too
(`TooManyPixelsError`), so a provider's decompression bomb is refused like a booth's.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from boothbridge.images import JPEG_EOI, jpeg_lacks_only_eoi, sniff_mime

_ORIENTATION_TAG = 0x0112
JPEG_INPUT_QUALITY = 95  # re-encoding a photo for a provider: visually lossless, ~half the size of 100
DEFAULT_OUTPUT_QUALITY = 92
_LOSSY_SOURCES = frozenset({"image/jpeg", "image/webp", "image/heic"})
_MIME = {"jpeg": "image/jpeg", "png": "image/png"}
_FORMAT_OF = {mime: fmt for fmt, mime in _MIME.items()}

# JPEG segments kept when stripping metadata: JFIF (APP0), the ICC profile (APP2 "ICC_PROFILE") and Adobe's
# colour-transform flag (APP14); every other APPn (EXIF/XMP in APP1, MPF in APP2, IPTC in APP13, ...) and COM go.
_JPEG_APP0, _JPEG_APP2, _JPEG_APP14, _JPEG_COM = 0xE0, 0xE2, 0xEE, 0xFE
# PNG chunks dropped when stripping metadata: text, EXIF and the modification time.
_PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

log = logging.getLogger(__name__)


class UndecodableImageError(ValueError):
    """The bytes are not an image that can be opened and fully decoded."""


class TooManyPixelsError(ValueError):
    """The image has more pixels than the configured limit (a decompression-bomb guard)."""


@dataclass(frozen=True)
class Normalised:
    """An image as it crosses the boundary: the encoded bytes, their MIME type, and what had to change."""

    data: bytes
    mime: str
    changes: tuple[str, ...] = ()


def use_pixel_limit(max_pixels: int) -> None:
    """Make Pillow's own decompression-bomb guard agree with ours (process-wide: Pillow keeps it in a module
    global). Pillow warns above `Image.MAX_IMAGE_PIXELS` and refuses twice that; every decode in boothbridge
    checks `max_pixels` itself, so the two must not disagree for sizes in between."""
    Image.MAX_IMAGE_PIXELS = max_pixels


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open (not decode) `data`, refusing more than `max_pixels` pixels before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is the one that counts
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(str(exc)) from exc
    except Exception as exc:  # Pillow raises many types for non-images (OSError, SyntaxError, ValueError, ...)
        raise UndecodableImageError(f"cannot open image: {exc}") from exc
    if img.width * img.height > max_pixels:
        img.close()
        raise TooManyPixelsError(f"{img.width}x{img.height} is more than {max_pixels} pixels")
    return img


def _load(img: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except MemoryError:
        raise
    except Exception as exc:
        raise UndecodableImageError(f"cannot decode image: {exc}") from exc


# ---- pixels ------------------------------------------------------------------------------------------------


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # a broken EXIF block: nothing to apply
        return 1


def _is_srgb(icc: bytes) -> bool:
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return False
    return "srgb" in description.lower().replace(" ", "")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info


def _to_eight_bit_grey(img: Image.Image) -> Image.Image:
    """Integer (`I`, `I;16*`) and float (`F`) greyscale scaled to 8 bits by the range its values live in.

    16-bit data (the common source: 16-bit PNG and TIFF) spans 0..65535; a 32-bit integer image whose values
    exceed that spans 0..2^32-1; a float image spans 0..1 (the usual convention), or 0..255 / 0..65535 when its
    values show it was stored unscaled."""
    wide = img.convert("F") if img.mode == "F" else img.convert("I")
    extrema = wide.getextrema()
    high = float(extrema[1]) if isinstance(extrema[1], int | float) else 0.0
    if img.mode == "F":
        top = 1.0 if high <= 1.0 else 255.0 if high <= 255.0 else 65535.0 if high <= 65535.0 else high
    elif str(img.mode).startswith("I;16") or high <= 65535:
        top = 65535.0
    else:
        top = 4294967295.0
    scale = 255.0 / top
    return wide.point(lambda v: v * scale + 0.5).convert("L")


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """Convert from the embedded profile to sRGB (perceptual intent); the result is RGB or RGBA."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    base = img.convert("RGB") if img.mode in ("RGBA", "RGBX") else img.convert("L") if img.mode == "LA" else img
    converted = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
    if converted is None:  # pragma: no cover - only with inPlace=True
        raise UndecodableImageError("colour conversion failed")
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def normalise(img: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """Upright, sRGB, 8-bit RGB or RGBA pixels without metadata, and what changed (`orientation`, `colour`,
    `mode`). `img` must be loaded; its pixels are not modified, but when it is returned as it is its `info`
    (comment, EXIF, profile) is emptied."""
    changes: list[str] = []
    icc = img.info.get("icc_profile")
    if _orientation(img) != 1:
        img = ImageOps.exif_transpose(img)
        changes.append("orientation")
    if img.mode == "F" or str(img.mode).startswith("I"):
        img = _to_eight_bit_grey(img)
        changes.append("mode")
    if icc and not _is_srgb(icc) and img.mode in ("RGB", "RGBA", "RGBX", "CMYK", "L", "LA"):
        try:
            img = _to_srgb(img, icc)
            changes.append("colour")
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            # A profile LittleCMS cannot use (broken, or for another colour space): the pixels go as they are,
            # and the operator can see why their colours may be off.
            log.warning("an embedded ICC profile could not be applied (%s); pixels taken as sRGB", exc)
    if img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if _has_alpha(img) else "RGB")
        if "mode" not in changes:
            changes.append("mode")
    # Pillow's encoders copy a comment, EXIF and the ICC profile from `info` into what they write: the pixels
    # leave without any (they are upright sRGB now, which untagged images are taken to be).
    img.info = {}
    return img, tuple(changes)


def encode(img: Image.Image, fmt: str, quality: int) -> Normalised:
    """Encode an RGB/RGBA image as `jpeg` (alpha flattened on white) or `png`, with no metadata at all."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        if img.mode == "RGBA":
            flat = Image.new("RGB", img.size, (255, 255, 255))
            flat.paste(img, mask=img.getchannel("A"))
            img = flat
        img.save(buf, "JPEG", quality=min(max(int(quality), 1), 100))
    elif fmt == "png":
        img.save(buf, "PNG")
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return Normalised(buf.getvalue(), _MIME[fmt])


# ---- metadata, losslessly --------------------------------------------------------------------------------


def strip_jpeg_metadata(data: bytes) -> bytes:
    """The JPEG without EXIF/XMP/IPTC/MPF/comment segments and without data after its end-of-image marker;
    the compressed image itself is copied unchanged. Returns `data` itself when nothing is dropped."""
    if not data.startswith(b"\xff\xd8"):
        return data
    out = bytearray(b"\xff\xd8")
    pos, dropped = 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return data  # not a marker where one must be: leave the file alone
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data up to the end-of-image marker
            end = _jpeg_end(data, pos)
            dropped = dropped or end < len(data)
            out += data[pos:end]
            return bytes(out) if dropped else data
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos : pos + 2 + length]
        payload = segment[4:]
        keep = not (0xE0 <= marker <= 0xEF or marker == _JPEG_COM)
        keep = keep or (marker == _JPEG_APP0 and payload.startswith((b"JFIF\x00", b"JFXX\x00")))
        keep = keep or (marker == _JPEG_APP2 and payload.startswith(b"ICC_PROFILE\x00"))
        keep = keep or (marker == _JPEG_APP14 and payload.startswith(b"Adobe"))
        if keep:
            out += segment
        else:
            dropped = True
        pos += 2 + length
    return data


def _jpeg_end(data: bytes, sos: int) -> int:
    """Offset just past the end-of-image marker of the primary image (markers inside entropy-coded data are
    byte-stuffed as FF 00 or are restart markers, so the first FF D9 after the first scan ends it), or the
    file's length when the marker is missing."""
    end = data.find(b"\xff\xd9", sos)
    return len(data) if end < 0 else end + 2


def _lacks_eoi(data: bytes) -> bool:
    """A JPEG with no end-of-image marker after its first scan (it may lack only that, or be cut short)."""
    sos = data.find(b"\xff\xda")
    return sos >= 0 and _jpeg_end(data, sos) == len(data) and not data.endswith(JPEG_EOI)


def strip_png_metadata(data: bytes) -> bytes:
    """The PNG without text, EXIF and time chunks; image chunks copied unchanged (`data` itself when clean)."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    out = bytearray(_PNG_SIGNATURE)
    pos, dropped = len(_PNG_SIGNATURE), False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind in _PNG_METADATA_CHUNKS:
            dropped = True
        else:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            break
    return bytes(out) if dropped else data


def _png_is_plain_8bit(data: bytes) -> bool:
    """IHDR says 8 bits per sample, truecolour with or without alpha (colour type 2 or 6)."""
    return len(data) >= 26 and data[12:16] == b"IHDR" and data[24] == 8 and data[25] in (2, 6)


def _clean(img: Image.Image, mime: str, data: bytes) -> bool:
    """Can the bytes cross as they are, metadata aside: upright, sRGB or untagged, 8-bit RGB(A) JPEG or PNG."""
    if mime not in ("image/jpeg", "image/png") or img.mode not in ("RGB", "RGBA"):
        return False
    if mime == "image/png" and (not _png_is_plain_8bit(data) or "transparency" in img.info):
        return False
    icc = img.info.get("icc_profile")
    return _orientation(img) == 1 and (not icc or _is_srgb(icc))


def _strip(data: bytes, mime: str) -> bytes:
    return strip_jpeg_metadata(data) if mime == "image/jpeg" else strip_png_metadata(data)


# ---- the two crossings ------------------------------------------------------------------------------------


def prepare_input(data: bytes, max_pixels: int) -> Normalised:
    """A booth photo or template as a provider may receive it (see the module docstring).

    The bytes were validated when they entered (ingest, media registration); they are decoded here only when
    something has to change. Raises `UndecodableImageError` or `TooManyPixelsError`."""
    mime = sniff_mime(data)
    if mime is None:
        raise UndecodableImageError("not an image")
    if mime == "image/jpeg" and _lacks_eoi(data):
        data += JPEG_EOI  # validated on entry: only the end-of-image marker is missing (see images.inspect_image)
    with open_image(data, max_pixels) as img:
        if _clean(img, mime, data):
            stripped = _strip(data, mime)
            return Normalised(stripped, mime, ("metadata",) if stripped is not data else ())
        _load(img)
        pixels, changes = normalise(img)
        fmt = "jpeg" if pixels.mode == "RGB" and mime in _LOSSY_SOURCES else "png"
        encoded = encode(pixels, fmt, JPEG_INPUT_QUALITY)  # inside: `pixels` may be `img`, closed on leaving
    return Normalised(encoded.data, encoded.mime, (*changes, "metadata", "encoding"))


def _verify(img: Image.Image, mime: str) -> None:
    """Fully decode; a JPEG at 1/8 scale, which still walks every entropy-coded block (truncation and corruption
    show) at a fraction of the cost of a full-size decode."""
    if mime == "image/jpeg":
        img.draft("RGB", (max(img.width // 8, 1), max(img.height // 8, 1)))
    _load(img)


def accept_result(data: bytes, output_format: str | None, quality: int, max_pixels: int) -> Normalised:
    """A provider's answer as the booth receives it: identified by its bytes, fully decoded, normalised, in the
    slot's `output_format` (`jpeg`/`png`; None keeps JPEG or PNG as delivered and turns anything else into PNG
    with alpha or JPEG without). Raises `UndecodableImageError` (not an image, or one that does not decode) or
    `TooManyPixelsError`."""
    if output_format is not None and output_format not in _MIME:
        raise ValueError(f"unsupported output format {output_format!r}")
    mime = sniff_mime(data)
    if mime is None:
        raise UndecodableImageError("the answer is not an image")
    if mime == "image/jpeg" and _lacks_eoi(data) and jpeg_lacks_only_eoi(data):
        data += JPEG_EOI
    with open_image(data, max_pixels) as img:
        wanted = output_format or _FORMAT_OF.get(mime)
        if wanted is not None and _MIME[wanted] == mime and _clean(img, mime, data):
            _verify(img, mime)
            return Normalised(_strip(data, mime), mime)
        _load(img)
        pixels, changes = normalise(img)
        encoded = encode(pixels, wanted or ("png" if pixels.mode == "RGBA" else "jpeg"), quality)
    return Normalised(encoded.data, encoded.mime, (*changes, "encoding"))
