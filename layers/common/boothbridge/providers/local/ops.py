"""Pure Pillow image operations behind the `local` provider: no I/O, no event loop, no framework imports.

Every function accepts RGB, RGBA, L and P images (and other Pillow modes via `to_rgb_or_rgba`) and returns
a new RGB or RGBA image; the inputs are never modified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image, ImageStat

from boothbridge.images.codec import to_rgb_or_rgba

LANCZOS = Image.Resampling.LANCZOS
_HEX_COLOR = re.compile(r"^#([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})$")
_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_color(value: str) -> tuple[int, int, int]:
    """Parse a `#rrggbb` colour into an RGB tuple."""
    match = _HEX_COLOR.match(value)
    if match is None:
        raise ValueError(f"invalid colour {value!r}, expected #rrggbb")
    r, g, b = (int(part, 16) for part in match.groups())
    return r, g, b


def parse_ratio(value: str) -> tuple[int, int]:
    """Parse an `W:H` aspect ratio such as `16:9` into a pair of positive integers."""
    match = _RATIO.match(value)
    if match is None or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise ValueError(f"invalid aspect ratio {value!r}, expected W:H")
    return int(match.group(1)), int(match.group(2))


def _crop_to_ratio(width: int, height: int, rw: int, rh: int) -> tuple[int, int]:
    """Return the largest size with ratio rw:rh that fits inside width x height."""
    if width * rh > height * rw:  # too wide: keep the height
        return max(1, min(width, round(height * rw / rh))), height
    return width, max(1, min(height, round(width * rh / rw)))


def _centre_crop(img: Image.Image, width: int, height: int) -> Image.Image:
    """Crop a width x height box from the centre of `img`."""
    left = (img.width - width) // 2
    top = (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def reduced(img: Image.Image, long_side: int) -> Image.Image:
    """`img` reduced so its long side is at most `long_side` px (never enlarged; `img` itself when it already
    fits): the working copy the vision operations analyse. A reducing resize (box-reduce by an integer factor
    first, then bilinear) reads a 24 MP photo once."""
    scale = long_side / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


@dataclass(frozen=True)
class Plan:
    """A geometric operation as its two steps: LANCZOS-resample the whole image to `resample` (None: keep it),
    then cut a centred box of `crop` pixels (width, height; None: keep it all). Sizes in pixels.

    Planning from the size alone lets another engine (`providers.local.fast`) decode only what the plan needs."""

    resample: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None

    def apply(self, src: Image.Image) -> Image.Image:
        """Carry the plan out on `src` with Pillow; always a new image."""
        out = src if self.resample is None else _resample(src, self.resample)
        if self.crop is not None:
            return _centre_crop(out, *self.crop)  # a crop is a new image: no copy of a 24 MP photo first
        return out.copy() if out is src else out


def reframe_plan(width: int, height: int, aspect_ratio: str, mode: str) -> Plan | None:
    """The plan of `reframe` in "crop" mode for a width x height image; None for "pad" (not a crop and resample).
    Raises ValueError for a bad ratio or mode."""
    rw, rh = parse_ratio(aspect_ratio)
    if mode == "crop":
        return Plan(crop=_crop_to_ratio(width, height, rw, rh))
    if mode != "pad":
        raise ValueError(f"unknown reframe mode {mode!r}")
    return None


def reframe(img: Image.Image, aspect_ratio: str, mode: str = "crop", pad_color: str = "#ffffff") -> Image.Image:
    """Change the aspect ratio by a centred crop ("crop") or by centring on a pad_color canvas ("pad")."""
    src = to_rgb_or_rgba(img)
    w, h = src.size
    plan = reframe_plan(w, h, aspect_ratio, mode)
    if plan is not None:
        return plan.apply(src)
    rw, rh = parse_ratio(aspect_ratio)
    rgb = parse_color(pad_color)
    if w * rh > h * rw:  # too wide: grow the height (ceil keeps the whole photo inside)
        size = (w, -(-w * rh // rw))
    else:
        size = (-(-h * rw // rh), h)
    fill = (*rgb, 255) if src.mode == "RGBA" else rgb
    canvas = Image.new(src.mode, size, fill)
    canvas.paste(src, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


def _placed(src: Image.Image, size: tuple[int, int], x: int, y: int, scale: float) -> Image.Image:
    """A transparent RGBA canvas of `size` with `src` scaled by `scale` and its top-left corner at (x, y) (canvas
    pixels; negative or beyond the canvas is allowed, the outside part is dropped). Only the part of the scaled
    image that lands on the canvas is resampled, so large scales do not allocate the whole enlarged image."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    src = to_rgb_or_rgba(src).convert("RGBA")
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    sw, sh = max(1, round(src.width * scale)), max(1, round(src.height * scale))
    left, upper = max(x, 0), max(y, 0)
    right, lower = min(x + sw, canvas.width), min(y + sh, canvas.height)
    if right > left and lower > upper:
        fx, fy = src.width / sw, src.height / sh  # source pixels per scaled pixel
        box = ((left - x) * fx, (upper - y) * fy, (right - x) * fx, (lower - y) * fy)
        if (sw, sh) == src.size:
            part = src.crop((left - x, upper - y, right - x, lower - y))
        else:
            part = src.resize((right - left, lower - upper), LANCZOS, box=box)
        canvas.paste(part, (left, upper))
    return canvas


def _flattened(canvas: Image.Image) -> Image.Image:
    """`canvas` (RGBA) as RGB when it is fully opaque, else as it is."""
    if canvas.getchannel("A").getextrema() == (255, 255):
        return canvas.convert("RGB")
    return canvas


def frame(photo: Image.Image, template: Image.Image, x: int, y: int, scale: float) -> Image.Image:
    """Place `photo` scaled by `scale` at (x, y) under `template`, which shows it through transparent areas.

    The canvas has the template's size and starts transparent; a template without alpha is opaque and
    therefore covers the photo completely. The result is RGB when it is fully opaque, RGBA otherwise.
    """
    top = to_rgb_or_rgba(template).convert("RGBA")
    canvas = _placed(photo, top.size, x, y, scale)
    canvas.alpha_composite(top)
    return _flattened(canvas)


# fal's names for image sizes (AIGE seed 001's overlay `aspect_ratio`) as the ratios they stand for.
NAMED_RATIOS = {
    "square_hd": "1:1",
    "square": "1:1",
    "portrait_4_3": "3:4",
    "portrait_16_9": "9:16",
    "landscape_4_3": "4:3",
    "landscape_16_9": "16:9",
}


def overlay(
    person: Image.Image,
    background: Image.Image,
    x: int,
    y: int,
    scale: float,
    aspect_ratio: str | None = None,
) -> Image.Image:
    """Put `person` (usually RGBA with a transparent surround, e.g. a cut-out avatar) OVER `background`.

    The person is scaled by `scale` (1 = its own pixels) and its top-left corner placed at (x, y) in background
    pixels; parts outside the background are dropped, the person's alpha blends it onto the background. With
    `aspect_ratio` (`W:H` or one of `NAMED_RATIOS`) the composite is then centre-cropped to the largest box of
    that ratio (as `reframe` in crop mode). The result has the (cropped) background's size: RGB when fully opaque,
    RGBA when the background itself has transparent parts. Raises ValueError for a bad scale or ratio."""
    ratio = None if aspect_ratio is None else NAMED_RATIOS.get(aspect_ratio, aspect_ratio)
    if ratio is not None:
        parse_ratio(ratio)  # a bad ratio is refused before any pixel work
    canvas = to_rgb_or_rgba(background).convert("RGBA")
    canvas.alpha_composite(_placed(person, canvas.size, x, y, scale))
    if ratio is not None:
        canvas = reframe(canvas, ratio, mode="crop")
    return _flattened(canvas)


def white_balance(img: Image.Image, strength: float = 1.0) -> Image.Image:
    """Grey-world correction: scale R, G, B so their means meet the grey mean, blended by `strength`.

    The blend is applied to the per-channel gains (gain = 1 + strength * (full_gain - 1)), which equals
    blending the pixels linearly except where the full correction would clip at 255. Fully transparent
    pixels are ignored when measuring the means; alpha is kept as is.
    """
    strength = min(max(float(strength), 0.0), 1.0)
    src = to_rgb_or_rgba(img)
    if strength == 0.0:
        return src.copy()
    rgb = src.convert("RGB") if src.mode == "RGBA" else src
    mask = src.getchannel("A") if src.mode == "RGBA" else None
    if mask is not None and mask.getbbox() is None:
        return src.copy()  # nothing visible to measure
    means = ImageStat.Stat(rgb, mask).mean[:3]
    grey = sum(means) / 3
    table: list[int] = []
    for mean in means:
        gain = 1.0 + strength * (grey / mean - 1.0) if mean > 0 else 1.0
        table.extend(min(255, round(i * gain)) for i in range(256))
    if src.mode == "RGBA":
        table.extend(range(256))
    return src.point(table)


def _scaled(w: int, h: int, width: int | None, height: int | None) -> tuple[int, int]:
    """Return the aspect-preserving size that fits inside the given side(s), one side matching exactly."""
    if width is not None and (height is None or width * h <= height * w):
        return width, max(1, round(h * width / w))
    if height is not None:
        return max(1, round(w * height / h)), height
    raise ValueError("resize needs a width or a height")


def resize(
    img: Image.Image, width: int | None, height: int | None, mode: str = "fit", upscale: bool = True
) -> Image.Image:
    """Resize by "fit" (inside the box), "fill" (cover then centre-crop) or "stretch" (exact box).

    With only one side given, "fit" and "fill" scale to it and "stretch" keeps the aspect for the other
    side. With `upscale=False` nothing is enlarged: "fit" keeps the original size when the box is larger,
    "stretch" limits each side to the original, and "fill" returns the largest centred crop with the box's
    ratio that the original holds (no resampling) when covering the box would need enlarging.
    """
    src = to_rgb_or_rgba(img)
    return resize_plan(*src.size, width, height, mode=mode, upscale=upscale).apply(src)


def resize_plan(w: int, h: int, width: int | None, height: int | None, mode: str = "fit", upscale: bool = True) -> Plan:
    """The plan of `resize` for a w x h image (see `resize` for the modes); raises ValueError for bad settings."""
    if (width is not None and width < 1) or (height is not None and height < 1):
        raise ValueError("width and height must be positive")
    if mode == "fill" and width is not None and height is not None:
        cover = max(width / w, height / h)
        if cover > 1 and not upscale:
            return Plan(crop=_crop_to_ratio(w, h, width, height))
        return Plan(resample=(max(width, round(w * cover)), max(height, round(h * cover))), crop=(width, height))
    if mode == "stretch":
        target = _scaled(w, h, width, height)
        size = (width or target[0], height or target[1])
        if not upscale:
            size = (min(size[0], w), min(size[1], h))
        return Plan(resample=size)
    if mode not in ("fit", "fill"):
        raise ValueError(f"unknown resize mode {mode!r}")
    size = _scaled(w, h, width, height)
    if not upscale and (size[0] > w or size[1] > h):
        size = (w, h)
    return Plan(resample=size)


def _resample(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """LANCZOS-resize `img` to `size`, or copy it when the size is unchanged."""
    return img.copy() if size == img.size else img.resize(size, LANCZOS)
