"""The `local` provider's crops and downscales of a plain JPEG with libvips: decoded once, at the size the operation
needs, and encoded once, in one streaming pass.

On a 24 MP camera JPEG this is 2.5x faster than Pillow for a resize (libvips' LANCZOS-3 reduce against Pillow's
LANCZOS from the full-size decode) and 1.35x for a 1:1 crop (`python -m bench.image_ops`, README "Image operations
on a camera-sized photo"). The output is the same as the Pillow path's: the geometry comes from the same plans
(`ops.resize_plan`, `ops.reframe_plan`), a crop decodes to the very same pixels, a resize differs from Pillow's
full-size LANCZOS by well under one level on average, and the JPEG is written with the same quality tables and
4:2:0 chroma, without metadata.

A JPEG stored sideways (EXIF orientation 2-8: a camera held for a portrait) is decoded and resampled in its stored
orientation (to the upright target's sides swapped), then turned upright (the orientation as Pillow reads it, so
both paths agree) and cropped as an upright one: one decode, of the pixels needed.

Anything this path does not cover (PNG, non-sRGB, CMYK or grey JPEGs, pads, enlargements, PNG output) returns None,
and so does any libvips failure (libvips is told to stop at the first libjpeg warning): the caller then takes the
Pillow path, which reports errors as it always has.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from PIL import Image

from boothbridge.images import boundary as image_boundary
from boothbridge.images import codec, vips
from boothbridge.images.upload import sniff_mime
from boothbridge.providers.base import ImageInput, ImageSource
from boothbridge.providers.local import ops as local_ops

log = logging.getLogger(__name__)

# libjpeg decodes at 1/2, 1/4 or 1/8 scale directly from the DCT coefficients ("shrink-on-load").
_JPEG_SCALES = (8, 4, 2)
# How libvips turns a stored image upright for each EXIF orientation (the transposes of `boundary.normalise`).
_UPRIGHT_OPS: dict[int, tuple[str, ...]] = {
    1: (),
    2: ("fliphor",),
    3: ("rot180",),
    4: ("flipver",),
    5: ("rot90", "fliphor"),
    6: ("rot90",),
    7: ("rot270", "fliphor"),
    8: ("rot270",),
}


def _vips() -> ModuleType | None:
    """pyvips, or None when libvips cannot be loaded here (the local provider then uses Pillow alone)."""
    return vips.load()


def load_scale(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The JPEG decode scale (1, 2, 4 or 8) for a resample of `size` to `target`: the largest that still leaves at
    least twice the target in both directions, so the final LANCZOS step has the pixels it needs (as libvips'
    own shrink-on-load does). The same rule as Pillow's `Image.draft(mode, 2 * target)`."""
    w, h = size
    ratio = min(w // (2 * target[0]), h // (2 * target[1]))
    return next((scale for scale in _JPEG_SCALES if ratio >= scale), 1)


def _plan(operation_id: str, settings: dict[str, Any], size: tuple[int, int]) -> local_ops.Plan | None:
    """The operation's plan for an image of `size`, or None when it is not a crop and downscale."""
    if operation_id == "reframe" and "aspect_ratio" in settings:
        return local_ops.reframe_plan(*size, str(settings["aspect_ratio"]), str(settings.get("mode", "crop")))
    if operation_id == "resize":
        width, height = settings.get("width"), settings.get("height")
        plan = local_ops.resize_plan(
            *size,
            None if width is None else int(width),
            None if height is None else int(height),
            mode=str(settings.get("mode", "fit")),
            upscale=bool(settings.get("upscale", True)),
        )
        if plan.resample is None or (plan.resample[0] <= size[0] and plan.resample[1] <= size[1]):
            return plan
    return None  # an enlargement: libvips would interpolate differently from Pillow's LANCZOS


def run(
    operation_id: str, settings: dict[str, Any], image: ImageSource, fmt: str, quality: int
) -> codec.EncodedHere | None:
    """Carry out a `local` resize or reframe crop of the JPEG `image` into a JPEG at `quality`, or None when this
    path does not apply (see the module docstring). `image` is in memory or in a file (`image.path`: libvips reads
    the file as it decodes, the photo's bytes are never all in memory). CPU-bound: runs in the provider's worker
    thread."""
    if fmt.lower() != "jpeg" or operation_id not in ("resize", "reframe"):
        return None
    if isinstance(image, ImageInput):
        source: bytes | Path = image.data
        geometry = _jpeg_geometry(image.data)
    elif image.path is not None:
        source = image.path
        geometry = _jpeg_geometry_at(image.path)
    else:
        return None
    if geometry is None:
        return None
    size, orientation = geometry
    try:
        plan = _plan(operation_id, settings, size)
    except (ValueError, TypeError):
        return None  # the Pillow path reports bad settings, after the photo's own errors as before
    vips = _vips() if plan is not None else None
    if plan is None or vips is None:
        return None
    try:
        return _execute(vips, source, size, orientation, plan, quality)
    except vips.Error as exc:
        log.info("libvips could not process the photo (%s); falling back to Pillow", str(exc).splitlines()[0])
        return None


def _jpeg_geometry(data: bytes) -> tuple[tuple[int, int], int] | None:
    """(upright width and height, EXIF orientation) of a JPEG this path can decode (`boundary.turned_only`), read
    from its header; None for anything else (other types and modes, a profile to convert, what Pillow's pixel
    guard refuses to open)."""
    if sniff_mime(data) != "image/jpeg":
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return _geometry(img, data)
    except Exception:  # not an image Pillow opens (or a decompression bomb): the Pillow path reports it
        return None


def _jpeg_geometry_at(path: Path) -> tuple[tuple[int, int], int] | None:
    """`_jpeg_geometry` of the JPEG in the file at `path`, from its header (Pillow reads no further)."""
    try:
        with path.open("rb") as file:
            head = file.read(16)
            if sniff_mime(head) != "image/jpeg":
                return None
            file.seek(0)
            with Image.open(file) as img:
                return _geometry(img, head)
    except Exception:  # not an image Pillow opens (or a decompression bomb): the Pillow path reports it
        return None


def _geometry(img: Image.Image, head: bytes) -> tuple[tuple[int, int], int] | None:
    """`_jpeg_geometry` of an opened JPEG (`head`: its first bytes at least)."""
    orientation = image_boundary.turned_only(img, "image/jpeg", head)
    if orientation is None:
        return None
    w, h = img.size
    return ((h, w) if orientation in image_boundary.SWAPS_SIDES else (w, h)), orientation


def _execute(
    vips: Any, source: bytes | Path, size: tuple[int, int], orientation: int, plan: local_ops.Plan, quality: int
) -> codec.EncodedHere | None:
    """Decode (at `load_scale`), resample, turn upright (`orientation`, EXIF 1-8), crop and encode in one libvips
    pipeline; `source` is the JPEG's bytes or its file, `size` its upright size.

    A sideways photo is resampled in its stored orientation (to the upright target's sides swapped) and only the
    resampled image, held in memory, is turned: turning reads out of order, which a streamed decode cannot. A crop
    alone turns the whole decode in memory (as Pillow's path holds it too)."""
    scale = 1 if plan.resample is None else load_scale(size, plan.resample)
    turns = _UPRIGHT_OPS[orientation]
    # fail_on="warning": a truncated or damaged JPEG raises here instead of coming out grey; Pillow then decides.
    sequential = not turns or plan.resample is not None
    options: dict[str, Any] = {"access": "sequential" if sequential else "random", "fail_on": "warning"}
    if scale > 1:
        options["shrink"] = scale
    if isinstance(source, Path):
        img = vips.Image.jpegload(str(source), **options)
    else:
        img = vips.Image.jpegload_buffer(source, **options)
    if plan.resample is not None:
        tw, th = plan.resample
        stored = (th, tw) if orientation in image_boundary.SWAPS_SIDES else (tw, th)
        if stored != (img.width, img.height):
            img = img.resize(stored[0] / img.width, vscale=stored[1] / img.height, kernel="lanczos3")
            if (img.width, img.height) != stored:  # a rounding libvips does differently: let Pillow do it
                return None
        if turns:
            img = img.copy_memory()
    for turn in turns:
        img = getattr(img, turn)()
    if plan.crop is not None:
        cw, ch = plan.crop
        img = img.crop((img.width - cw) // 2, (img.height - ch) // 2, cw, ch)
    # Pillow's defaults for the same quality: 4:2:0 chroma, no Huffman optimisation, no metadata at all.
    data_out = img.jpegsave_buffer(Q=min(max(int(quality), 1), 100), keep="none", subsample_mode="on")
    return codec.encoded_here(bytes(data_out), "image/jpeg", (img.width, img.height))
