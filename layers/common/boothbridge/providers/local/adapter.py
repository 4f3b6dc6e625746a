"""The `local` provider: offline operations (reframe, frame, overlay, white balance, resize, extract_object) with
Pillow, and libvips for the crops and downscales of a plain JPEG; cost 0."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from boothbridge.catalog import Catalog
from boothbridge.images import codec
from boothbridge.images.codec import to_rgb_or_rgba
from boothbridge.providers.base import (
    ImageSource,
    ProviderError,
    ProviderRequest,
    ProviderResult,
    in_memory,
)
from boothbridge.providers.local import fast as local_fast
from boothbridge.providers.local import mask_ops, person_ops
from boothbridge.providers.local import matte as local_matte
from boothbridge.providers.local import ops as local_ops
from boothbridge.providers.local.inputs import Operation, decode_input, image_bytes
from boothbridge.settings import Settings

DEFAULT_FORMAT = "jpeg"
DEFAULT_QUALITY = 92
# Operations whose result is always a PNG, whatever the `output` setting: they make transparency.
PNG_ONLY = frozenset({"extract_object"}) | person_ops.PNG_ONLY | mask_ops.PNG_ONLY


def _reframe(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    s = request.settings
    if "aspect_ratio" not in s:
        raise ValueError("aspect_ratio is required")
    return local_ops.reframe(
        photo,
        str(s["aspect_ratio"]),
        mode=str(s.get("mode", "crop")),
        pad_color=str(s.get("pad_color", "#ffffff")),
    )


def _frame(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    s = request.settings
    template = decode_input(request.media["template_media_id"], what="template image")
    return local_ops.frame(photo, template, x=int(s.get("x", 0)), y=int(s.get("y", 0)), scale=float(s.get("scale", 1)))


def _overlay(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    s = request.settings
    background = decode_input(request.media["background_media_id"], what="background image")
    ratio = s.get("aspect_ratio")
    return local_ops.overlay(
        photo,
        background,
        x=int(s.get("x", 0)),
        y=int(s.get("y", 0)),
        scale=float(s.get("scale", 1)),
        aspect_ratio=None if ratio in (None, "") else str(ratio),
    )


def _extract_object(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    s = request.settings
    mask = decode_input(request.media["mask_media_id"], what="mask image")
    blur = local_matte.feather_radius(s)
    return local_matte.extract_object(photo, mask, int(s.get("border_adjustment", 0)), blur)


def _white_balance(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    return local_ops.white_balance(photo, strength=float(request.settings.get("strength", 1)))


def _resize(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    s = request.settings
    width, height = s.get("width"), s.get("height")
    return local_ops.resize(
        photo,
        None if width is None else int(width),
        None if height is None else int(height),
        mode=str(s.get("mode", "fit")),
        upscale=bool(s.get("upscale", True)),
    )


def _resize_plan(request: ProviderRequest, data: bytes) -> local_ops.Plan | None:
    """The resize's plan for the photo's (`data`) upright size when it can be known from the header and the
    settings are valid; None otherwise (the photo is then decoded whole and the errors reported as ever)."""
    size = codec.upright_size(data)
    if size is None:
        return None
    s = request.settings
    width, height = s.get("width"), s.get("height")
    try:
        return local_ops.resize_plan(
            *size,
            None if width is None else int(width),
            None if height is None else int(height),
            mode=str(s.get("mode", "fit")),
            upscale=bool(s.get("upscale", True)),
        )
    except (ValueError, TypeError):
        return None


# The operations that need no configuration; `LocalProvider` adds the configured ones (`mask_ops.operations`).
_OPERATIONS: dict[str, Operation] = {
    "reframe": _reframe,
    "frame": _frame,
    "overlay": _overlay,
    "white_balance": _white_balance,
    "resize": _resize,
    "extract_object": _extract_object,
    **person_ops.OPERATIONS,
}
# The named images an operation cannot run without, each with the message of its `template_missing` error.
REQUIRED_MEDIA: dict[str, tuple[str, str]] = {
    "frame": ("template_media_id", "the frame template image is missing"),
    "overlay": ("background_media_id", "the overlay's background image is missing"),
    "extract_object": ("mask_media_id", "the extract_object mask image is missing"),
    **person_ops.REQUIRED_MEDIA,
    **mask_ops.REQUIRED_MEDIA,
}


async def _at_hand(image: ImageSource) -> ImageSource:
    """`image` as the worker thread can reach it: a file (opened there, when needed) or bytes in memory (a stored
    object is read now)."""
    return image if image.path is not None else await in_memory(image)


def _output_options(settings: dict[str, Any]) -> tuple[str, int]:
    """Return the output (format, quality) with the catalog defaults applied."""
    output = settings.get("output") or {}
    if not isinstance(output, dict):
        raise ValueError("output must be an object")
    return str(output.get("format", DEFAULT_FORMAT)), int(output.get("quality", DEFAULT_QUALITY))


def _run_sync(operation: Operation, request: ProviderRequest) -> ProviderResult:
    """Decode, process and encode one request, each once; runs in a worker thread.

    A crop or downscale of a plain JPEG goes through libvips (`fast`); everything else through Pillow, where a
    resize decodes a JPEG at the smallest DCT scale that leaves twice its target. The result is marked
    `codec.EncodedHere`, so the worker does not decode it again."""
    try:
        fmt, quality = _output_options(request.settings)
    except (ValueError, TypeError):
        fmt, quality = DEFAULT_FORMAT, DEFAULT_QUALITY  # reported below, after the photo's own errors as before
    else:
        fast = local_fast.run(request.operation_id, request.settings, request.photo(), fmt, quality)
        if fast is not None:
            return ProviderResult(image=fast, cost=0.0)
    data = image_bytes(request.photo())  # Pillow's path decodes from memory: read here, dropped when the thread ends
    plan = _resize_plan(request, data) if request.operation_id == "resize" else None
    if plan is not None and plan.resample is not None:
        needed = (plan.resample[0] * 2, plan.resample[1] * 2)
        photo = decode_input(request.photo(), what="photo", min_size=needed, data=data)
    else:
        photo = decode_input(request.photo(), what="photo", data=data)
    del data
    try:
        fmt, quality = _output_options(request.settings)
        if request.operation_id in PNG_ONLY:
            fmt = "png"
        # A drafted photo is smaller than the header said: the plan made for the full size is the one to apply.
        result = plan.apply(to_rgb_or_rgba(photo)) if plan is not None else operation(photo, request)
        image = codec.encode_result(result, fmt, quality)
    except (ValueError, TypeError) as exc:
        raise ProviderError("settings_invalid", f"invalid settings: {exc}", retryable=False) from exc
    return ProviderResult(image=image, cost=0.0)


class LocalProvider:
    """Runs the catalog's `local` operations with Pillow in a worker thread; never touches the network.

    Besides the errors named in the catalog contract (`operation_unsupported`, `template_missing`,
    `image_undecodable`), settings that the operations reject raise `settings_invalid`; all are final.

    `fastsam_weights`: the FastSAM checkpoint smart_mask uses (None: GrabCut; `mask_ops.MaskOptions`), fixed when
    the provider is built (`build`).
    """

    id = "local"
    # Every operation decodes the photo (a corrupt one raises `image_undecodable`): the worker need not decode it
    # first to find out (see `jobs.runner`).
    decodes_input = True

    def __init__(self, *, fastsam_weights: Path | None = None) -> None:
        self.fastsam_weights = fastsam_weights
        options = mask_ops.MaskOptions(fastsam_weights=fastsam_weights)
        self._operations: dict[str, Operation] = {**_OPERATIONS, **mask_ops.operations(options)}

    async def run(self, request: ProviderRequest) -> ProviderResult:
        """Perform `request.operation_id` on the source photo and return the encoded result."""
        operation = self._operations.get(request.operation_id)
        if operation is None:
            raise ProviderError(
                "operation_unsupported",
                f"the local provider does not support operation {request.operation_id!r}",
                retryable=False,
            )
        required = REQUIRED_MEDIA.get(request.operation_id)
        if required is not None and required[0] not in request.media:
            raise ProviderError("template_missing", required[1], retryable=False)
        # Files (the worker's spool files) are opened in the thread; a stored object is read first.
        media = {name: await _at_hand(image) for name, image in request.media.items()}
        request = replace(request, source=await _at_hand(request.photo()), media=media)
        return await asyncio.to_thread(_run_sync, operation, request)

    async def close(self) -> None:
        """Release nothing: the local provider holds no clients or connections."""


def build(settings: Settings, catalog: Catalog) -> LocalProvider:
    """The declaration's factory (called with the settings and the catalog, as every provider's): the local
    provider needs neither, but for smart_mask's optional FastSAM checkpoint (`settings.fastsam_weights`)."""
    return LocalProvider(fastsam_weights=settings.fastsam_weights)
