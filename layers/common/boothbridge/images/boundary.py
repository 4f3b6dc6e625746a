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

import functools
import io
import logging
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms

from boothbridge.images import vips
from boothbridge.images.upload import JPEG_EOI, jpeg_lacks_only_eoi, sniff_mime

_ORIENTATION_TAG = 0x0112
JPEG_INPUT_QUALITY = 95  # re-encoding a photo for a provider: visually lossless, ~half the size of 100
DEFAULT_OUTPUT_QUALITY = 92
_LOSSY_SOURCES = frozenset({"image/jpeg", "image/webp", "image/heic"})
_MIME = {"jpeg": "image/jpeg", "png": "image/png"}
PNG_COMPRESS_LEVEL = 1  # see `_png`
_FORMAT_OF = {mime: fmt for fmt, mime in _MIME.items()}

# JPEG segments kept when stripping metadata: JFIF (APP0), the ICC profile (APP2 "ICC_PROFILE") and Adobe's
# colour-transform flag (APP14); every other APPn (EXIF/XMP in APP1, MPF in APP2, IPTC in APP13, ...) and COM go.
_JPEG_APP0, _JPEG_APP2, _JPEG_APP14, _JPEG_COM = 0xE0, 0xE2, 0xEE, 0xFE
# PNG chunks dropped when stripping metadata: text, EXIF and the modification time.
_PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

_LAB_TO_SRGB = ImageCms.buildTransform(ImageCms.createProfile("LAB"), _SRGB, "LAB", "RGB")

log = logging.getLogger(__name__)


class UndecodableImageError(ValueError):
    """The bytes are not an image that can be opened and fully decoded."""


class TooManyPixelsError(ValueError):
    """The image has more pixels than the configured limit (a decompression-bomb guard)."""


class UnencodableImageError(ValueError):
    """The pixels are fine but cannot be written in the wanted format (e.g. a side beyond JPEG's 65,535 px)."""


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


# EXIF orientation -> the transposition that shows the image upright (EXIF 2.32, tag 0x0112).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# EXIF orientations whose upright image is the stored one turned sideways (its width and height swap).
SWAPS_SIDES = frozenset({5, 6, 7, 8})


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image, 1-8; 1 when it has none, or a broken or unknown one (which
    `normalise` does not apply either)."""
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # a broken EXIF block: nothing to apply
        return 1
    return value if value in _UPRIGHT else 1


# Probe colours for `_is_srgb`: primaries, secondaries, greys at several levels and a few skin and sky tones.
_PROBE = Image.new("RGB", (16, 1))
_PROBE.putdata(
    [
        *((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255)),
        *((0, 0, 0), (32, 32, 32), (64, 64, 64), (128, 128, 128), (192, 192, 192), (224, 172, 140), (120, 80, 60)),
        *((90, 140, 210), (40, 120, 60)),
    ]
)


@functools.lru_cache(maxsize=64)
def _is_srgb(icc: bytes) -> bool:
    """Whether an RGB profile behaves as sRGB: converting probe colours through it to sRGB changes none of them by
    more than 2 levels. Judged by what the profile does, not its name (a "Linear sRGB" profile is not sRGB)."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return False
        converted = ImageCms.profileToProfile(_PROBE, profile, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError, AttributeError):
        return False
    if converted is None:  # pragma: no cover - only with inPlace=True
        return False
    pairs = zip(_PROBE.tobytes(), converted.tobytes(), strict=True)
    return max(abs(a - b) for a, b in pairs) <= 2


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info


_STRIP_ROWS = 256  # rows scaled at a time: a 150 MP 16-bit grey photo needs no 32-bit copy of itself


def _grey_top(img: Image.Image) -> float:
    """The value that maps to 255: the top of the range the samples live in.

    16-bit data (the common source: 16-bit PNG and TIFF) spans 0..65535; a 32-bit integer image whose values
    exceed that spans the signed 32-bit range; a float image spans 0..1 (the usual convention), or 0..255 /
    0..65535 when its values show it was stored unscaled. Non-finite float samples do not set the range."""
    if str(img.mode).startswith("I;16"):
        return 65535.0
    extrema = img.getextrema()
    high = float(extrema[1]) if isinstance(extrema[1], int | float) else 0.0
    if img.mode == "F":
        if not math.isfinite(high):
            high = 1.0
        return 1.0 if high <= 1.0 else 255.0 if high <= 255.0 else 65535.0 if high <= 65535.0 else high
    return 65535.0 if high <= 65535 else 2147483647.0


def _to_eight_bit_grey(img: Image.Image) -> Image.Image:
    """Integer (`I`, `I;16*`) and float (`F`) greyscale scaled to 8 bits by the range its values live in
    (`_grey_top`); negative samples become 0, those above the range 255. Worked in strips of rows, so the 32-bit
    intermediate never holds more than a strip."""
    scale = 255.0 / _grey_top(img)
    wide_mode = "F" if img.mode == "F" else "I"
    out = Image.new("L", img.size)
    for top in range(0, img.height, _STRIP_ROWS):
        strip = img.crop((0, top, img.width, min(top + _STRIP_ROWS, img.height))).convert(wide_mode)
        out.paste(strip.point(lambda v: v * scale + 0.5).convert("L"), (0, top))
    return out


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
    turn = orientation(img)
    if turn != 1:
        # Transposed here rather than with ImageOps.exif_transpose, which also rewrites the EXIF block and fails on
        # a mistyped tag elsewhere in it (seen in the field); the metadata is dropped below anyway.
        img = img.transpose(_UPRIGHT[turn])
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
    if img.mode == "LAB":  # CIELAB pixels: a colorimetric conversion (Pillow's convert would copy the channels)
        img = ImageCms.applyTransform(img, _LAB_TO_SRGB) or img
        changes.append("colour")
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
        return Normalised(_png(img), _MIME[fmt])
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return Normalised(buf.getvalue(), _MIME[fmt])


def _png(img: Image.Image) -> bytes:
    """`img` (8-bit L, RGB or RGBA from here on; other modes through Pillow) as a PNG without metadata, at zlib level
    1: a 24 MP cut-out (a pipeline's intermediate) is written in ~0.6 s by libvips with the "up" filter against
    2.1 s by Pillow at level 1 and ~6 s at its default level 6, for ~35 % more bytes than Pillow's level 1
    (`bench/vision_ops.py`; measured on one core: 6000x4000 RGBA, 21.6 MB against 16.2 MB)."""
    bands = {"L": 1, "RGB": 3, "RGBA": 4}.get(img.mode)
    pyvips = vips.load() if bands is not None else None
    if pyvips is None:
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        return buf.getvalue()
    pixels = img.tobytes()  # one copy, freed when this returns
    image = pyvips.Image.new_from_memory(pixels, img.width, img.height, bands, "uchar")
    data: bytes = image.pngsave_buffer(compression=PNG_COMPRESS_LEVEL, filter="up", keep="none")
    # libvips always writes a pHYs (resolution) chunk: dropped, so what we encode passes `accept_result` as it is.
    return strip_png_metadata(data) or data


# ---- metadata, losslessly --------------------------------------------------------------------------------
# Allowlists, failing closed: a file whose structure is not exactly as expected is not passed on (None), and the
# caller decodes and re-encodes it instead, so a malformed segment can never smuggle metadata through.

_JPEG_SOI, _JPEG_EOI_MARKER, _JPEG_SOS = 0xD8, 0xD9, 0xDA
# Segments a decoder needs: frame headers (SOF0-15 but DHT C4, JPG C8, DAC CC), tables (DHT C4, DAC CC, DQT DB,
# DRI DD, DNL DC) and scans (SOS DA). Of the application segments only the JFIF header (APP0 "JFIF"), the ICC
# profile (APP2 "ICC_PROFILE") and Adobe's colour-transform flag (APP14 "Adobe") stay.
_JPEG_CODING = frozenset({*range(0xC0, 0xD0), 0xDA, 0xDB, 0xDC, 0xDD}) - {0xC8}
_RESTART = frozenset(range(0xD0, 0xD8))


def _jpeg_segment_kept(marker: int, payload: bytes) -> bool:
    if marker in _JPEG_CODING:
        return True
    return (
        (marker == 0xE0 and payload.startswith(b"JFIF\x00"))
        or (marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"))
        or (marker == 0xEE and payload.startswith(b"Adobe"))
    )


def _entropy_end(data: bytes, pos: int) -> int:
    """Offset of the first marker after entropy-coded data starting at `pos` (FF 00 is a stuffed byte, FF D0-D7
    a restart marker, FF FF fill), or len(data)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        nxt = data[pos + 1]
        if nxt == 0x00 or nxt in _RESTART:
            pos += 2
        elif nxt == 0xFF:
            pos += 1
        else:
            return pos


def strip_jpeg_metadata(data: bytes) -> bytes | None:
    """The JPEG with only the segments a decoder needs (plus JFIF, ICC and Adobe), its scans copied byte for
    byte, ending at its end-of-image marker; None when the file is not a well-formed JPEG stream (the caller then
    re-encodes). A missing end-of-image marker is restored (whether only that was missing is the caller's check:
    `images.jpeg_lacks_only_eoi`)."""
    stripped = _strip_jpeg(data)
    return stripped[0] if stripped is not None else None


def _strip_jpeg(data: bytes) -> tuple[bytes, bool] | None:
    """`strip_jpeg_metadata`, and whether the end-of-image marker had to be restored. The kept segments are
    joined once (views of `data`, no copy of each): a camera photo's scan is nearly all of it, and the worker
    prepares many at once, so the photo and its stripped copy are all that exist at any moment."""
    if not data.startswith(b"\xff\xd8"):
        return None
    view = memoryview(data)
    out: list[memoryview] = [view[:2]]
    pos = 2
    scanned = False
    while pos < len(data):
        if data[pos] != 0xFF:
            return None  # bytes where a marker must be
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= len(data):
            return None
        marker = data[pos + 1]
        if marker == _JPEG_EOI_MARKER:
            return b"".join([*out, view[pos : pos + 2]]), False
        if marker in _RESTART or marker in (0x00, _JPEG_SOI, 0x01):
            return None  # not a segment that can stand here
        if pos + 4 > len(data):
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return None
        if _jpeg_segment_kept(marker, data[pos + 4 : min(end, pos + 16)]):  # an APPn's signature is enough
            out.append(view[pos:end])
        pos = end
        if marker == _JPEG_SOS:
            scanned = True
            scan_end = _entropy_end(data, pos)
            out.append(view[pos:scan_end])
            pos = scan_end
    if not scanned:
        return None
    return b"".join([*out, JPEG_EOI]), True


# Chunks a PNG decoder needs, and those that describe colour; text, EXIF, time, animation (APNG), private and
# unknown chunks go, and nothing after IEND is kept.
_PNG_KEPT = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB"})
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def strip_png_metadata(data: bytes) -> bytes | None:
    """The PNG with only the chunks a decoder needs and those about colour, ending with IEND (restored when
    missing); None when the chunk structure is broken (the caller then re-encodes)."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    out = bytearray(_PNG_SIGNATURE)
    pos = len(_PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            return None
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data) or not kind.isalpha():
            return None
        if kind in _PNG_KEPT:
            out += data[pos:end]
        if kind == b"IEND":
            return bytes(out)
        pos = end
    out += _PNG_IEND
    return bytes(out)


def _png_is_plain_8bit(data: bytes) -> bool:
    """IHDR says 8 bits per sample, truecolour with or without alpha (colour type 2 or 6)."""
    return len(data) >= 26 and data[12:16] == b"IHDR" and data[24] == 8 and data[25] in (2, 6)


def _clean(img: Image.Image, mime: str, data: bytes) -> bool:
    """Can the bytes cross as they are, metadata aside: upright, sRGB or untagged, 8-bit RGB(A) JPEG or PNG."""
    return orientation(img) == 1 and _plain_pixels(img, mime, data)


def _plain_pixels(img: Image.Image, mime: str, data: bytes) -> bool:
    """sRGB or untagged, 8-bit RGB(A) JPEG or PNG: the pixels need no conversion (their orientation aside)."""
    if mime not in ("image/jpeg", "image/png") or img.mode not in ("RGB", "RGBA"):
        return False
    if mime == "image/png" and (not _png_is_plain_8bit(data) or "transparency" in img.info):
        return False
    icc = img.info.get("icc_profile")
    return not icc or _is_srgb(icc)


def turned_only(img: Image.Image, mime: str, data: bytes) -> int | None:
    """The EXIF orientation (1-8) of an image whose pixels `normalise` would only turn upright, if at all (sRGB or
    untagged, 8-bit RGB(A) JPEG or PNG), None for one it would convert: what lets the `local` provider decode a
    sideways camera JPEG with libvips and turn it there. `img` is `data` opened, not necessarily loaded."""
    return orientation(img) if _plain_pixels(img, mime, data) else None


def left_alone(img: Image.Image, mime: str, data: bytes) -> bool:
    """Whether `normalise` would change nothing in these pixels (upright, sRGB or untagged, 8-bit RGB(A) JPEG or
    PNG): `img` is `data` opened, not necessarily loaded. What lets the `local` provider decode a JPEG elsewhere."""
    return _clean(img, mime, data)


def _strip(data: bytes, mime: str) -> tuple[bytes, bool] | None:
    """(the file without metadata, whether a JPEG's end-of-image marker was restored), or None when its structure
    is not one to pass on (not JPEG or PNG, or malformed)."""
    if mime == "image/jpeg":
        return _strip_jpeg(data)
    if mime == "image/png":
        stripped = strip_png_metadata(data)
        return (stripped, False) if stripped is not None else None
    return None


# ---- the two crossings ------------------------------------------------------------------------------------


def prepare_input(data: bytes, max_pixels: int, *, verify: bool = False, as_stored: bool = False) -> Normalised:
    """A booth photo or template as a provider may receive it (see the module docstring).

    The bytes were checked when they entered (ingest: type, header and ending; media registration: a full
    decode; a JPEG that lacks only its end-of-image marker was accepted there, and gets it back here); they are
    decoded only when something has to change, or when `verify` asks (a booth photo for a provider that does not
    decode it itself: corruption inside the data shows only in a decode; a JPEG at 1/8 scale).

    `as_stored`: the receiver decodes the image itself as `codec.decode` does (upright, sRGB, 8-bit: the `local`
    provider) and sends no byte of it anywhere; the bytes then cross as they are, EXIF orientation and ICC
    profile included for that decoder, after the type and the pixel limit are checked from the header. A camera
    held sideways (a portrait booth's every photo) is then decoded once, at the size the operation needs, instead
    of decoded, turned and re-encoded here first.

    Raises `UndecodableImageError` or `TooManyPixelsError`."""
    mime = sniff_mime(data)
    if mime is None:
        raise UndecodableImageError("not an image")
    if as_stored:
        open_image(data, max_pixels).close()
        return Normalised(data, mime)
    stripped = _strip(data, mime)
    # Decoded from the file as it came (its EXIF says which way is up), the end-of-image marker restored if need be.
    with open_image(_with_eoi(data, stripped), max_pixels) as img:
        if stripped is not None and _clean(img, mime, data):
            if verify:
                _verify(img, mime)
            return Normalised(stripped[0], mime, ("metadata",) if stripped[0] != data else ())
        _load(img)
        pixels, changes = normalise(img)
        fmt = "jpeg" if pixels.mode == "RGB" and mime in _LOSSY_SOURCES else "png"
        encoded = _encoded(pixels, fmt, JPEG_INPUT_QUALITY)  # inside: `pixels` may be `img`, closed on leaving
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
    with alpha or JPEG without). Raises `UndecodableImageError` (not an image, or one that does not decode),
    `TooManyPixelsError`, or `UnencodableImageError` (decoded, but cannot be written in the wanted format)."""
    if output_format is not None and output_format not in _MIME:
        raise ValueError(f"unsupported output format {output_format!r}")
    mime = sniff_mime(data)
    if mime is None:
        raise UndecodableImageError("the answer is not an image")
    stripped = _strip(data, mime)
    if stripped is not None and stripped[1] and not jpeg_lacks_only_eoi(data):
        raise UndecodableImageError("the JPEG is cut short")
    with open_image(_with_eoi(data, stripped), max_pixels) as img:
        wanted = output_format or _FORMAT_OF.get(mime)
        if stripped is not None and wanted is not None and _MIME[wanted] == mime and _clean(img, mime, data):
            _verify(img, mime)
            return Normalised(stripped[0], mime)
        _load(img)
        pixels, changes = normalise(img)
        encoded = _encoded(pixels, wanted or ("png" if pixels.mode == "RGBA" else "jpeg"), quality)
    return Normalised(encoded.data, encoded.mime, (*changes, "encoding"))


def _with_eoi(data: bytes, stripped: tuple[bytes, bool] | None) -> bytes:
    return data + JPEG_EOI if stripped is not None and stripped[1] else data


def _encoded(img: Image.Image, fmt: str, quality: int) -> Normalised:
    """`encode`, with the encoder's refusals (a JPEG side over 65,535 px, …) as `UnencodableImageError`."""
    try:
        return encode(img, fmt, quality)
    except (OSError, ValueError) as exc:
        raise UnencodableImageError(f"cannot write a {img.width}x{img.height} image as {fmt}: {exc}") from exc
