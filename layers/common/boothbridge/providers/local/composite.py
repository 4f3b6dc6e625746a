"""Background replacement for the `local` provider's `replace_background`: the people of a photo composited onto
a template image (pure Pillow around `segment` and `ops.overlay`; no I/O).

Placement is AIGE's overlay (seed 001, as `ops.overlay`): the cut-out scaled by `scale` (1: its own pixels) with
its top-left corner at (x, y) in template pixels; what falls outside the template is dropped.
"""

from __future__ import annotations

from PIL import Image

from boothbridge.images.codec import to_rgb_or_rgba
from boothbridge.providers.local import ops, segment


def has_transparency(img: Image.Image) -> bool:
    """Whether `img` (any mode) has at least one pixel that is not fully opaque."""
    src = to_rgb_or_rgba(img)
    return src.mode == "RGBA" and src.getchannel("A").getextrema() != (255, 255)


def cut_out(photo: Image.Image, options: segment.MatteOptions | None = None) -> Image.Image:
    """The people of `photo` as RGBA: a photo that already has transparency (a `remove_background` result earlier
    in the pipeline, or a cut-out made elsewhere) is its own matte and is taken as it is (`options` unused); an
    opaque one is segmented (`segment.remove_background` with `options`)."""
    if has_transparency(photo):
        return to_rgb_or_rgba(photo)
    return segment.remove_background(photo, options)


def replace_background(
    photo: Image.Image,
    template: Image.Image,
    x: int,
    y: int,
    scale: float,
    options: segment.MatteOptions | None = None,
) -> Image.Image:
    """The people of `photo` (see `cut_out`) placed onto `template` at (x, y) scaled by `scale` (see the module).

    The result has the template's size and the template's own alpha: where the template is transparent the
    result is transparent too, person included (a die-cut template stays die-cut; a template's window shows
    nothing, unlike `frame`), and where it is partly transparent so is the result. The colours there are the
    person over the template's own colours. An opaque template gives an RGB result, any other an RGBA one.
    Raises ValueError for a scale that is not positive or options out of range; inputs are not modified."""
    if scale <= 0:
        raise ValueError("scale must be positive")  # before any pixel work
    person = cut_out(photo, options)
    background = to_rgb_or_rgba(template)
    alpha = background.getchannel("A") if has_transparency(background) else None
    composite = ops.overlay(person, background.convert("RGB"), x, y, scale)
    if alpha is None:
        return composite
    composite.putalpha(alpha)
    return composite
