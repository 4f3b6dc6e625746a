"""The finishing stage (issue 14, item 4): a slot's final image made ready for the print window and the booth.

`finish_image` takes the chain's last image (through the image boundary already: 8-bit RGB/RGBA, sRGB or
untagged, JPEG or PNG) and applies, in order, with one decode and one encode where the byte cap allows:
1. Size (`width`, `height` in px, up or down). Both set: "fit" (default) scales to the largest size inside W x H
   keeping the aspect ratio, and the output is that scaled image, not the box; "fill" scales to cover W x H and
   centre-crops (exactly W x H); "pad" fits, then centres on an opaque W x H canvas of `pad_color` (default
   white, the paper; exactly W x H). One side set: scaled keeping the aspect ratio until that side equals it
   (`fit`, `pad_color` mean nothing: a box with a free side has nothing to crop or pad). A JPEG shrunk more than
   twice is decoded at a reduced DCT scale, still at least twice the target; big downscales `reduce` first.
2. Sharpen (0..1): unsharp mask after resizing, radius 1.5 px, amount 0..250 %, threshold 2, colour bands only.
3. Overlay (a frame or logo, the bytes the caller loaded for `overlay_media_id`): any alpha kept (one without
   is placed opaque), scaled to fit the output keeping its aspect ratio (a frame made for the print size covers
   it exactly), centred, alpha-composited over the result.
4. Encode in `format` (default: the input's) at `quality` (default 90; PNG is lossless and ignores it). PNG
   keeps alpha, JPEG is flattened on white. An ICC profile the input embeds is written again unless the
   boundary converted its pixels from it; no other metadata.
5. Byte cap (`max_bytes`, floor 10,000 in the schema: caps are transport limits in MB, a Lambda response or a
   booth's upload limit, so less is a typo; 10 kB still holds a small photo). Over it, a JPEG's quality drops
   first (the highest that fits, found by binary search, down to 40 or the asked quality when lower), then the
   resolution (towards the size the byte count suggests, at least x0.9 a round, at most 16 rounds, never under
   16 px a side). Where the output size is free (no size, one side, "fit") the smaller image is the output; for
   "fill" and "pad" the size is the contract (a print window), so the reduced image is scaled back to exactly
   W x H: detail drops, not size. `format` is always honoured (a PNG over the cap loses detail too, it does not
   turn into a JPEG).
A spec that changes nothing (`is_noop`), or asks only for the input's own format and a cap the input already
meets, returns the input bytes as they are.

Errors: `FinishingError.code` "finishing_failed" (the image does not decode or encode), "overlay_unusable" (the
overlay does not decode, or the spec names one and none was given), "finishing_cap_unreachable". Pure: bytes in,
bytes out, CPU-bound (run it in a worker thread).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from PIL import Image, ImageFilter
from PIL.JpegImagePlugin import JpegImageFile

from boothbridge.images import boundary as image_boundary
from boothbridge.images.upload import sniff_mime

DEFAULT_QUALITY = 90
QUALITY_FLOOR = 40  # below this JPEG blocks show at print size; lose resolution instead
SHRINK_STEP = 0.9  # the least a round lowers the resolution by
MAX_SHRINK_ROUNDS = 16
MIN_SIDE = 16  # px: a cap that needs a smaller image than this is not a cap one can meet with a photo
MIN_MAX_BYTES = 10_000
DEFAULT_PAD_COLOR = "#ffffff"
_REDUCING_GAP = 3.0  # Pillow reduces by an integer factor first while the scale is below 1/3: fast, no visible loss
_MIME = {"jpeg": "image/jpeg", "png": "image/png"}
_FORMAT_OF = {mime: fmt for fmt, mime in _MIME.items()}

FINISHING_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "The finishing stage of a slot's final image (issue 14); every field is optional.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": 1, "maximum": 20000, "description": "Output width, px"},
        "height": {"type": "integer", "minimum": 1, "maximum": 20000, "description": "Output height, px"},
        "fit": {"enum": ["fit", "fill", "pad"], "default": "fit"},
        "pad_color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$", "default": DEFAULT_PAD_COLOR},
        "sharpen": {"type": "number", "minimum": 0, "maximum": 1},
        "overlay_media_id": {"type": ["string", "null"], "format": "uuid"},
        "format": {"enum": ["jpeg", "png"]},
        "quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": DEFAULT_QUALITY},
        "max_bytes": {"type": "integer", "minimum": MIN_MAX_BYTES, "description": "Byte cap of the output"},
    },
}


class FinishingError(Exception):
    """The finishing stage could not produce an image: `.code` (finishing_failed, overlay_unusable,
    finishing_cap_unreachable) and a human-readable `.message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Finishing:
    """A finishing spec as `FINISHING_SCHEMA` describes it; None = not set (see the module docstring)."""

    width: int | None = None
    height: int | None = None
    fit: str | None = None  # "fit" | "fill" | "pad"; None = "fit"
    pad_color: str | None = None  # "#rrggbb"; None = white
    sharpen: float | None = None  # 0..1
    overlay_media_id: str | None = None
    format: str | None = None  # "jpeg" | "png"; None = the input's
    quality: int | None = None  # 1..100; None = 90
    max_bytes: int | None = None

    @property
    def is_noop(self) -> bool:
        """Whether the spec changes nothing: no size, sharpening, overlay, format, quality or cap (`fit` and
        `pad_color` alone do nothing)."""
        settings = (self.width, self.height, self.overlay_media_id, self.format, self.quality, self.max_bytes)
        return not self.sharpen and all(value is None for value in settings)

    @property
    def exact_size(self) -> tuple[int, int] | None:
        """(W, H) when the output must be exactly that ("fill" or "pad" with both sides), else None."""
        if self.width is not None and self.height is not None and self.fit in ("fill", "pad"):
            return self.width, self.height
        return None


def parse_finishing(mapping: Mapping[str, Any] | None) -> Finishing:
    """A `Finishing` from a schema-valid finishing object (a slot's `finishing`, a job pipeline's); {} or None
    gives the no-op spec."""
    values = {field.name: (mapping or {}).get(field.name) for field in fields(Finishing)}
    kinds: dict[str, Callable[[Any], Any]] = {"sharpen": float, "width": int, "height": int, "quality": int}
    kinds["max_bytes"] = int  # JSON numbers may arrive as floats (1.5e6); the dataclass holds the declared types
    return Finishing(**{k: kinds[k](v) if k in kinds and v is not None else v for k, v in values.items()})


def finish_image(data: bytes, mime: str, spec: Finishing, overlay: bytes | None) -> tuple[bytes, str]:
    """The finished image's bytes and MIME type (see the module docstring). `overlay` is the encoded overlay
    image (placed whenever given); a spec naming `overlay_media_id` without one raises "overlay_unusable"."""
    if overlay is None and spec.overlay_media_id is not None:
        raise FinishingError("overlay_unusable", f"the overlay image {spec.overlay_media_id} was not found")
    if overlay is None and spec.is_noop:
        return data, mime
    in_format = _FORMAT_OF.get(sniff_mime(data) or "")
    fmt = spec.format or in_format
    untouched = overlay is None and spec.width is None and spec.height is None and not spec.sharpen
    if untouched and spec.quality is None and fmt is not None and fmt == in_format:
        if spec.max_bytes is None or len(data) <= spec.max_bytes:
            return data, _MIME[fmt]

    img, icc, header_size = _decode(data, "finishing_failed", lambda size: _draft_request(size, spec))
    img = _size(img, header_size, spec)
    if spec.sharpen:
        img = _sharpen(img, spec.sharpen)
    if overlay is not None:
        img = _place_overlay(img, overlay)
    fmt = fmt or ("png" if img.mode == "RGBA" else "jpeg")
    if fmt == "jpeg" and img.mode == "RGBA":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    quality = spec.quality if spec.quality is not None else DEFAULT_QUALITY
    return _within_cap(img, fmt, quality, icc, spec.max_bytes, spec.exact_size), _MIME[fmt]


def _decode(
    data: bytes, code: str, draft: Callable[[tuple[int, int]], tuple[int, int] | None]
) -> tuple[Image.Image, bytes | None, tuple[int, int]]:
    """(upright sRGB RGB/RGBA pixels, the ICC profile to write again or None, the upright size in the header).
    `draft(upright size)` may ask a JPEG to be decoded at a reduced scale of at least that size."""
    # No warnings.catch_warnings here (it is not thread-safe, and this runs in worker threads): both images passed
    # the pixel limit when they came in, so Pillow's bomb warning (set to that limit) cannot fire.
    try:
        img = Image.open(io.BytesIO(data))
        icc = img.info.get("icc_profile") or None
        swapped = image_boundary.orientation(img) in image_boundary.SWAPS_SIDES
        upright = (img.height, img.width) if swapped else img.size
        # A camera JPEG with an MPF index of further images opens as MPO: a JPEG still (as in `codec.decode`).
        request = draft(upright) if isinstance(img, JpegImageFile) else None
        if request is not None:
            img.draft(img.mode, (request[1], request[0]) if swapped else request)
        img.load()
        pixels, changes = image_boundary.normalise(img)
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises many types for bytes that are not a decodable image
        what = "overlay" if code == "overlay_unusable" else "image"
        raise FinishingError(code, f"the {what} cannot be decoded: {exc}") from exc
    # A profile the boundary converted from is not the pixels' profile any more: they are sRGB, written untagged.
    return pixels, (icc if "colour" not in changes else None), upright


Box = tuple[float, float, float, float]


def _plan(size: tuple[int, int], spec: Finishing) -> tuple[tuple[int, int], Box] | None:
    """(the scaled size, the region of the source it is resampled from), or None to keep the size. For "pad"
    the scaled size is the fitted image, before the canvas."""
    w, h = size
    full = (0.0, 0.0, float(w), float(h))
    if spec.width is None and spec.height is None:
        return None
    if spec.width is None or spec.height is None:
        scale = spec.width / w if spec.width is not None else (spec.height or h) / h
        return (spec.width or max(1, round(w * scale)), spec.height or max(1, round(h * scale))), full
    box_w, box_h = spec.width, spec.height
    if spec.fit == "fill":
        scale = max(box_w / w, box_h / h)
        crop_w, crop_h = box_w / scale, box_h / scale
        left, top = (w - crop_w) / 2, (h - crop_h) / 2
        return (box_w, box_h), (left, top, left + crop_w, top + crop_h)
    scale = min(box_w / w, box_h / h)
    return (min(box_w, max(1, round(w * scale))), min(box_h, max(1, round(h * scale)))), full


def _draft_request(size: tuple[int, int], spec: Finishing) -> tuple[int, int] | None:
    """The smallest decode of a `size` JPEG that still gives the resample twice its target (None: full size)."""
    plan = _plan(size, spec)
    if plan is None:
        return None
    (out_w, out_h), (left, top, right, bottom) = plan
    return math.ceil(2 * size[0] * out_w / (right - left)), math.ceil(2 * size[1] * out_h / (bottom - top))


def _resample(img: Image.Image, size: tuple[int, int], box: Box | None = None) -> Image.Image:
    """LANCZOS resample of `box` (default: all) to `size` (Pillow premultiplies RGBA itself: no dark fringes)."""
    if size == img.size and (box is None or box == (0, 0, img.width, img.height)):
        return img
    return img.resize(size, Image.Resampling.LANCZOS, box, _REDUCING_GAP)


def _size(img: Image.Image, header_size: tuple[int, int], spec: Finishing) -> Image.Image:
    """Step 1: fit, fill, pad or one side (planned on the header's size; a draft decode is smaller, the region
    scales with it)."""
    plan = _plan(header_size, spec)
    if plan is None:
        return img
    out, (left, top, right, bottom) = plan
    kx, ky = img.width / header_size[0], img.height / header_size[1]
    img = _resample(img, out, (left * kx, top * ky, right * kx, bottom * ky))
    exact = spec.exact_size
    if spec.fit == "pad" and exact is not None and img.size != exact:
        rgb = _rgb(spec.pad_color or DEFAULT_PAD_COLOR)
        canvas = Image.new(img.mode, exact, (*rgb, 255) if img.mode == "RGBA" else rgb)
        canvas.paste(img, ((exact[0] - img.width) // 2, (exact[1] - img.height) // 2))
        img = canvas
    return img


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _sharpen(img: Image.Image, strength: float) -> Image.Image:
    """Step 2: unsharp mask, amount 250 % x strength, on the colour bands only."""
    mask = ImageFilter.UnsharpMask(radius=1.5, percent=round(250 * strength), threshold=2)
    if img.mode != "RGBA":
        return img.filter(mask)
    sharp = img.convert("RGB").filter(mask)
    sharp.putalpha(img.getchannel("A"))
    return sharp


def _place_overlay(img: Image.Image, overlay: bytes) -> Image.Image:
    """Step 3: the overlay fitted into the output (keeping its aspect ratio), centred, composited over it."""
    layer, _, _ = _decode(overlay, "overlay_unusable", lambda _size: None)
    layer = layer.convert("RGBA")
    scale = min(img.width / layer.width, img.height / layer.height)
    size = (min(img.width, max(1, round(layer.width * scale))), min(img.height, max(1, round(layer.height * scale))))
    layer = _resample(layer, size)
    at = ((img.width - size[0]) // 2, (img.height - size[1]) // 2)
    if img.mode == "RGBA":
        full = Image.new("RGBA", img.size, (0, 0, 0, 0))
        full.paste(layer, at)
        return Image.alpha_composite(img, full)
    img = img.copy()  # never draw on pixels the caller may still hold
    img.paste(layer, at, mask=layer.getchannel("A"))  # src x alpha + dst x (1 - alpha)
    return img


def _encode(img: Image.Image, fmt: str, quality: int, icc: bytes | None) -> bytes:
    buf = io.BytesIO()
    extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
    try:
        if fmt == "jpeg":
            img.save(buf, "JPEG", quality=quality, **extra)
        else:
            img.save(buf, "PNG", **extra)
    except (OSError, ValueError) as exc:  # e.g. a side over JPEG's 65,535 px
        raise FinishingError("finishing_failed", f"cannot write a {img.width}x{img.height} {fmt}: {exc}") from exc
    return buf.getvalue()


def _within_cap(
    img: Image.Image, fmt: str, quality: int, icc: bytes | None, cap: int | None, exact: tuple[int, int] | None
) -> bytes:
    """Steps 4 and 5: encode; over `cap`, lower the JPEG quality, then the resolution (module docstring)."""
    data = _encode(img, fmt, quality, icc)
    if cap is None or len(data) <= cap:
        return data
    if fmt == "jpeg":
        floor = min(quality, QUALITY_FLOOR)
        at_floor = _encode(img, fmt, floor, icc) if floor < quality else data
        if len(at_floor) <= cap:  # the highest quality that fits: `low` fits, everything above `high` does not
            low, high, best = floor, quality - 1, at_floor
            while low < high:
                mid = (low + high + 1) // 2
                trial = _encode(img, fmt, mid, icc)
                if len(trial) <= cap:
                    low, best = mid, trial
                else:
                    high = mid - 1
            return best
        quality, data = floor, at_floor
    scale, exponent = 1.0, 1.0 if exact else 2.5
    for _ in range(MAX_SHRINK_ROUNDS):
        # Bytes go as about scale**exponent: 2-3 for a photo (its noise averages out as it shrinks), below 1 at an
        # exact size (the pixel count stays, only the detail drops). Each round aims 3 % under the cap and
        # re-measures the exponent, so a few rounds land close under it instead of far below.
        last_scale, last_len = scale, len(data)
        scale *= min(SHRINK_STEP, (0.97 * cap / last_len) ** (1 / exponent))
        size = (round(img.width * scale), round(img.height * scale))
        if min(size) < MIN_SIDE:
            break
        smaller = _resample(img, size)
        data = _encode(_resample(smaller, exact) if exact else smaller, fmt, quality, icc)
        if len(data) <= cap:
            return data
        if len(data) < last_len:
            exponent = min(4.0, max(0.5, math.log(last_len / len(data)) / math.log(last_scale / scale)))
    raise FinishingError(
        "finishing_cap_unreachable",
        f"a {img.width}x{img.height} {fmt} cannot be brought under {cap} bytes (last try {len(data)} bytes)",
    )
