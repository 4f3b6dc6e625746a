"""Inspecting an uploaded photo: the type sniffed from its bytes, its size from its header, a pixel limit, and
whether it is whole.

Ingest streams the photo to storage and checks only what is cheap while it does (`accepted_type` on the first
bytes, `header_info` on the first HEADER_BYTES, `looks_whole` on the last TAIL_BYTES): a JPEG that ends with its
end-of-image marker and a PNG that ends with its IEND chunk are whole as far as their structure shows; corruption
inside the compressed data is found by the worker's decode (the one it does anyway). Anything else (a JPEG without
its final marker, a PNG with bytes after IEND, WebP) is checked the old way, `inspect_image`: a full decode of the
whole file, read back from storage.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

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


SNIFF_BYTES = 12  # the longest signature `sniff_mime` reads (RIFF....WEBP, ....ftypheic)
# The leading bytes kept while a photo streams, for its header: a camera JPEG's EXIF (with its thumbnail), XMP and
# MPF segments come before the frame header, each at most 64 KiB; a header beyond this is read from storage.
HEADER_BYTES = 256 * 1024
TAIL_BYTES = 12  # a PNG's IEND chunk
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# The types whose header and end are checked without a decode (`header_info`, `looks_whole`).
CHEAP_TYPES = frozenset({"image/jpeg", "image/png"})


def accepted_type(head: bytes, allowed_mime: tuple[str, ...]) -> str:
    """The type sniffed from the first (SNIFF_BYTES or all) bytes; 415 `unsupported_media_type` unless allowed."""
    mime = sniff_mime(head)
    if mime is None or mime not in allowed_mime:
        raise AppError(
            415,
            "unsupported_media_type",
            "the file is not an image of an accepted type",
            {"detected": mime or "unknown", "accepted": list(allowed_mime)},
        )
    return mime


def looks_whole(mime: str, tail: bytes) -> bool:
    """Whether a JPEG or PNG ending in `tail` (its last TAIL_BYTES) ends as a whole one does: a JPEG with its
    end-of-image marker (FF D9), a PNG with its IEND chunk. False for other types (they need `inspect_image`)."""
    if mime == "image/jpeg":
        return tail.endswith(JPEG_EOI)
    return mime == "image/png" and tail.endswith(_PNG_IEND)


def header_info(head: bytes, mime: str, max_pixels: int, *, whole: bool) -> ImageInfo | None:
    """Width and height read from the header in `head` (the file's first bytes; `whole`: all of them) by Pillow's
    `Image.open`, which reads the header only; 422 `image_too_many_pixels` over `max_pixels`. None when `head`
    ends before the header does (the caller checks the whole file), 422 `image_undecodable` when the whole file
    holds no header Pillow can read. Cheap (no pixel is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # `max_pixels` is the limit that counts
            with Image.open(io.BytesIO(head), formats=[_PIL_FORMAT[mime]]) as img:
                width, height = img.size
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(0, 0, max_pixels) from exc
    except Exception as exc:  # Pillow raises many types for a header it cannot read
        if not whole:
            return None
        raise AppError(
            422, "image_undecodable", "the file could not be decoded as an image (truncated or corrupt)"
        ) from exc
    if width * height > max_pixels:
        raise _too_many_pixels(width, height, max_pixels)
    return ImageInfo(mime=mime, width=width, height=height)


_PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG"}


def inspect_image(data: bytes, allowed_mime: tuple[str, ...], max_pixels: int) -> ImageInfo:
    """Accept only an allowed type that fully decodes within the pixel limit; raise AppError otherwise (the check
    of the photos `looks_whole` cannot vouch for).

    A JPEG whose entropy-coded data is complete but whose final end-of-image marker (FF D9) is missing is
    accepted (it decodes to the full image once the marker is restored, see `jpeg_lacks_only_eoi`); one that
    was cut off anywhere else stays `image_undecodable`.

    CPU-bound (a full decode): call it in a worker thread.
    """
    mime = accepted_type(data, allowed_mime)
    try:
        width, height = _decode_within_limit(data, max_pixels)
    except AppError as exc:
        if exc.code != "image_undecodable" or mime != "image/jpeg" or not _jpeg_scans_complete(data):
            raise
        # Only a JPEG whose every scan is present gets here; its pixel limit and Pillow decode are checked with
        # the marker restored before the strict decoder looks at the last scan's entropy-coded data.
        width, height = _decode_within_limit(data + JPEG_EOI, max_pixels)
        if not _jpeg_entropy_complete(data + JPEG_EOI):
            raise
    return ImageInfo(mime=mime, width=width, height=height)


def _decode_within_limit(data: bytes, max_pixels: int) -> tuple[int, int]:
    """The size of `data` after a full decode (a JPEG at 1/8 scale); AppError 422 if it has too many pixels
    or does not decode."""
    try:
        with warnings.catch_warnings():
            # `max_pixels` is the limit that counts (checked below before any pixel is decoded); Pillow's own guard
            # (a process-wide setting, see images.boundary.use_pixel_limit) must not refuse a camera's size below it.
            # Its hard stop, twice its limit, still means "too many pixels" here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise _too_many_pixels(width, height, max_pixels)
                if isinstance(img, JpegImageFile):  # an MPO (a JPEG with an MPF index of further images) too
                    # Decoding at 1/8 scale still walks every entropy-coded block, so truncation and
                    # corruption are caught at a fraction of the cost of a full-size decode.
                    img.draft("RGB", (max(width // 8, 1), max(height // 8, 1)))
                img.load()
    except AppError:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(0, 0, max_pixels) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise AppError(
            422, "image_undecodable", "the file could not be decoded as an image (truncated or corrupt)"
        ) from exc
    return width, height


JPEG_EOI = b"\xff\xd9"
# Where entropy-coded data ends: an FF that is not a stuffed 00, a restart marker RSTn or a fill byte.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_SOF_SEQUENTIAL = frozenset({0xC0, 0xC1, 0xC9})  # baseline, extended (Huffman or arithmetic)
_SOF_PROGRESSIVE = frozenset({0xC2, 0xCA})
_SOF_OTHER = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF})  # lossless, hierarchical


def jpeg_lacks_only_eoi(data: bytes) -> bool:
    """True when `data` is a JPEG that is complete except for its final end-of-image marker (FF D9): every
    scan the frame needs is present and the last one's entropy-coded data is whole, so `data + JPEG_EOI` is
    the full image. A JPEG cut off earlier (mid-scan, or between scans, or right after a marker) is False.
    Decodes the image (at 1/8 scale): CPU-bound."""
    return _jpeg_scans_complete(data) and _jpeg_entropy_complete(data + JPEG_EOI)


def _jpeg_scans_complete(data: bytes) -> bool:
    """Walk the marker segments of `data` (a JPEG without its EOI): every segment whole, and the scans cover
    the frame completely — each component in a sequential scan, or, progressive, each of its 64 coefficients
    down to the last bit (a scan with Al = 0). What is left to check is the last scan's entropy-coded data.

    Cutting a progressive JPEG between two scans leaves a stream that libjpeg decodes without any warning
    (to a blurrier image), so this structural check is what refuses it."""
    if not data.startswith(b"\xff\xd8") or data.endswith(JPEG_EOI):
        return False
    data += JPEG_EOI
    pos, end = 2, len(data)
    components: tuple[int, ...] = ()
    progressive = False
    sequential_seen: set[int] = set()
    final_bits: dict[int, set[int]] = {}  # component -> coefficients whose last bit (Al = 0) was sent
    while pos < end:
        if data[pos] != 0xFF:
            return False  # bytes between segments: not a stream that only lacks its EOI
        while pos < end and data[pos] == 0xFF:
            pos += 1
        if pos >= end:
            return False
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            return False  # standalone markers outside entropy-coded data
        if pos + 2 > end:
            return False
        length = int.from_bytes(data[pos : pos + 2], "big")
        segment = data[pos + 2 : pos + length]
        if length < 2 or pos + length > end:
            return False
        pos += length
        if marker in _SOF_OTHER:
            return False
        if marker in _SOF_SEQUENTIAL or marker in _SOF_PROGRESSIVE:
            if components or len(segment) < 6 or len(segment) < 6 + 3 * segment[5]:
                return False
            progressive = marker in _SOF_PROGRESSIVE
            components = tuple(segment[6 + 3 * i] for i in range(segment[5]))
        elif marker == 0xDA:
            if not components or not segment or len(segment) < 1 + 2 * segment[0] + 3:
                return False
            count = segment[0]
            scan = {segment[1 + 2 * i] for i in range(count)}
            ss, se, al = segment[1 + 2 * count], segment[2 + 2 * count], segment[3 + 2 * count] & 0x0F
            if not scan <= set(components) or ss > se or se > 63:
                return False
            sequential_seen |= scan
            if al == 0:
                for component in scan:
                    final_bits.setdefault(component, set()).update(range(ss, se + 1))
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()
    if pos != end or not components:
        return False
    if progressive:
        return all(len(final_bits.get(component, ())) == 64 for component in components)
    return sequential_seen == set(components)


def _jpeg_entropy_complete(data: bytes) -> bool:
    """Decode `data` (a whole JPEG stream) with a decoder that stops on libjpeg's warnings: the one that
    matters is "premature end of data segment", raised when the entropy decoder needs bits past the end of a
    scan's data (Pillow silently fills those with zeros). Any other warning refuses too."""
    import simplejpeg  # here, not at import time: it brings numpy, and only this rare path needs it

    try:
        header = simplejpeg.decode_jpeg_header(data)
        colorspace = {"GRAY": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}.get(str(header[2]).upper(), "RGB")
        simplejpeg.decode_jpeg(data, colorspace=colorspace, min_factor=8, strict=True)
    except (ValueError, RuntimeError, OSError):
        return False
    return True


def _too_many_pixels(width: int, height: int, max_pixels: int) -> AppError:
    details: dict[str, object] = {"max_pixels": max_pixels}
    if width and height:
        details.update(width=width, height=height)
    return AppError(422, "image_too_many_pixels", "the image has more pixels than accepted", details)
