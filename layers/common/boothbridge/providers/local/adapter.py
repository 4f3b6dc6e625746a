"""The `local` provider: offline Pillow operations (reframe, frame, white balance, resize), cost 0."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from PIL import Image

from boothbridge.catalog import Catalog
from boothbridge.images import codec
from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest, ProviderResult
from boothbridge.providers.local import ops as local_ops
from boothbridge.settings import Settings

DEFAULT_FORMAT = "jpeg"
DEFAULT_QUALITY = 92

_Operation = Callable[[Image.Image, ProviderRequest], Image.Image]


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
    template = _decode(request.media["template_media_id"], what="template image")
    return local_ops.frame(photo, template, x=int(s.get("x", 0)), y=int(s.get("y", 0)), scale=float(s.get("scale", 1)))


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


_OPERATIONS: dict[str, _Operation] = {
    "reframe": _reframe,
    "frame": _frame,
    "white_balance": _white_balance,
    "resize": _resize,
}


def _decode(image: ImageInput, *, what: str) -> Image.Image:
    """Decode an input image or raise the non-retryable `image_undecodable` error."""
    try:
        return codec.decode(image.data)
    except codec.UndecodableImageError as exc:
        raise ProviderError("image_undecodable", f"the {what} cannot be decoded", retryable=False) from exc


def _output_options(settings: dict[str, Any]) -> tuple[str, int]:
    """Return the output (format, quality) with the catalog defaults applied."""
    output = settings.get("output") or {}
    if not isinstance(output, dict):
        raise ValueError("output must be an object")
    return str(output.get("format", DEFAULT_FORMAT)), int(output.get("quality", DEFAULT_QUALITY))


def _run_sync(operation: _Operation, request: ProviderRequest) -> ProviderResult:
    """Decode, process and encode one request; runs in a worker thread."""
    photo = _decode(request.source, what="photo")
    try:
        fmt, quality = _output_options(request.settings)
        result = operation(photo, request)
        data, mime = codec.encode(result, fmt, quality)
    except (ValueError, TypeError) as exc:
        raise ProviderError("settings_invalid", f"invalid settings: {exc}", retryable=False) from exc
    return ProviderResult(image=ImageInput(data=data, mime=mime), cost=0.0)


class LocalProvider:
    """Runs the catalog's `local` operations with Pillow in a worker thread; never touches the network.

    Besides the errors named in the catalog contract (`operation_unsupported`, `template_missing`,
    `image_undecodable`), settings that the operations reject raise `settings_invalid`; all are final.
    """

    id = "local"

    async def run(self, request: ProviderRequest) -> ProviderResult:
        """Perform `request.operation_id` on the source photo and return the encoded result."""
        operation = _OPERATIONS.get(request.operation_id)
        if operation is None:
            raise ProviderError(
                "operation_unsupported",
                f"the local provider does not support operation {request.operation_id!r}",
                retryable=False,
            )
        if request.operation_id == "frame" and "template_media_id" not in request.media:
            raise ProviderError("template_missing", "the frame template image is missing", retryable=False)
        return await asyncio.to_thread(_run_sync, operation, request)

    async def close(self) -> None:
        """Release nothing: the local provider holds no clients or connections."""


def build(settings: Settings, catalog: Catalog) -> LocalProvider:
    """The declaration's factory (called with the settings and the catalog, as every provider's): the local
    provider needs neither."""
    return LocalProvider()
