"""Cut an object out of a photo with a mask: the `local` provider's `extract_object` (pure Pillow, no I/O).

Source: seed 002 (ArtMancer's API), §3.1 "Extract Object" — mask white (255) keeps, black (0) removes
(transparent), the result is a PNG with an alpha channel — and §2.1's mask options `border_adjustment` (pixels,
e.g. 5) and `use_blur` (a feathered edge).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image, ImageChops, ImageFilter

from boothbridge.images.codec import to_rgb_or_rgba

MAX_BORDER_PX = 50
MAX_BLUR_PX = 50.0
DEFAULT_BLUR_RADIUS = 3.0  # px: the feathering when `use_blur` is set without `blur_radius`
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")

_Combine = Callable[[Image.Image, Image.Image], Image.Image]


def feather_radius(settings: Mapping[str, Any]) -> float:
    """The edge feathering (Gaussian radius, px) seed 002's mask options ask for: `blur_radius` (default
    DEFAULT_BLUR_RADIUS) when `use_blur` is set, else 0 — as `extract_object` and `smart_mask` take them. Raises
    ValueError/TypeError for a radius that is not a number (the range is checked where it is applied)."""
    return float(settings.get("blur_radius", DEFAULT_BLUR_RADIUS)) if bool(settings.get("use_blur", False)) else 0.0


def mask_to_l(mask: Image.Image) -> Image.Image:
    """The mask as 8-bit grey ("L"): 255 keeps, 0 removes, values between are partly transparent.

    Any Pillow mode is accepted. Colour modes (RGB, RGBA, P, LA) give their luminance (ITU-R 601-2): an RGBA or
    LA mask's own alpha is ignored, since the mask says what to keep by its brightness, not its transparency. A
    mode "1" mask gives 0/255; a 16-bit grey mask ("I;16", "I") is scaled from 0..65535 to 0..255."""
    if mask.mode == "L":
        return mask.copy()
    if mask.mode in _SIXTEEN_BIT:
        return mask.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if mask.mode in ("RGBA", "LA", "PA", "P"):
        mask = mask.convert("RGBA").convert("RGB")  # the colour, without the alpha
    return mask.convert("L")


def _combine_shifted(img: Image.Image, step: int, axis: int, forward: bool, combine: _Combine) -> Image.Image:
    """`img` with each pixel p replaced by combine(p, the pixel `step` further along `axis` (0 = x, 1 = y),
    forward or backward); a pixel whose partner falls outside the image keeps its value."""
    width, height = img.size
    length = width if axis == 0 else height
    if step >= length:
        return img.copy()

    def box(start: int) -> tuple[int, int, int, int]:
        return (start, 0, start + length - step, height) if axis == 0 else (0, start, width, start + length - step)

    here, there = (0, step) if forward else (step, 0)
    out = img.copy()
    out.paste(combine(img.crop(box(here)), img.crop(box(there))), box(here)[:2])
    return out


def _window_along(img: Image.Image, radius: int, axis: int, combine: _Combine) -> Image.Image:
    """The extreme (`combine` = lighter: maximum, darker: minimum) of the window [p - radius, p + radius] along
    `axis`, clipped to the image, for every pixel — in O(log radius) whole-image operations (window doubling)."""
    halves = []
    for forward in (True, False):
        current, covered = img, 1  # `current` holds the extreme over `covered` pixels from p on, in this direction
        while covered < radius + 1:
            step = min(covered, radius + 1 - covered)
            current = _combine_shifted(current, step, axis, forward, combine)
            covered += step
        halves.append(current)
    return combine(halves[0], halves[1])


def adjust_border(mask: Image.Image, border_px: int) -> Image.Image:
    """Grow (positive `border_px`) or shrink (negative) the kept area of an "L" mask by |border_px| pixels: a
    grey dilation / erosion with a (2·|border_px|+1)² square, the same result as Pillow's `MaxFilter` /
    `MinFilter` of that size (windows clipped to the image) but fast for large sizes. Raises ValueError beyond
    ±MAX_BORDER_PX."""
    if not -MAX_BORDER_PX <= border_px <= MAX_BORDER_PX:
        raise ValueError(f"border_adjustment must be between -{MAX_BORDER_PX} and {MAX_BORDER_PX} pixels")
    if border_px == 0:
        return mask.copy()
    combine: _Combine = ImageChops.lighter if border_px > 0 else ImageChops.darker
    radius = abs(border_px)
    return _window_along(_window_along(mask, radius, 0, combine), radius, 1, combine)


def extract_object(image: Image.Image, mask: Image.Image, border_px: int = 0, blur_px: float = 0) -> Image.Image:
    """Return `image` (any mode; WxH) as RGBA whose alpha is the mask: white keeps, black is transparent.

    The mask (any mode and size, see `mask_to_l`) is resized to WxH (bilinear), its kept area grown or shrunk by
    `border_px` pixels of the image (-50..50, see `adjust_border`), then feathered with a Gaussian blur of radius
    `blur_px` pixels (0..50; 0: no blur). When `image` has its own transparency the two alphas are multiplied.
    The RGB is the image's, unchanged. Raises ValueError for a `border_px` or `blur_px` out of range. Inputs are
    not modified."""
    if not 0 <= blur_px <= MAX_BLUR_PX:
        raise ValueError(f"blur_radius must be between 0 and {MAX_BLUR_PX:g} pixels")
    alpha = mask_to_l(mask)
    if alpha.size != image.size:
        alpha = alpha.resize(image.size, Image.Resampling.BILINEAR)
    alpha = adjust_border(alpha, border_px)
    if blur_px > 0:
        alpha = alpha.filter(ImageFilter.GaussianBlur(blur_px))
    result = to_rgb_or_rgba(image).convert("RGBA")  # an opaque image gets alpha 255: the product is the mask
    result.putalpha(ImageChops.multiply(alpha, result.getchannel("A")))
    return result
