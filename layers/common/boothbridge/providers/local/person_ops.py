"""The `local` provider's person (segmentation) operations as the adapter calls them: `(photo, request) -> image`.

`remove_background` (`segment`) and `replace_background` (`composite`), issue 16; the adapter
(`providers.local.adapter`) merges `OPERATIONS`, `PNG_ONLY` and `REQUIRED_MEDIA`. Settings as the catalog's schemas
(`configs/providers.json`) name them; their defaults are `segment.MatteOptions`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from boothbridge.providers.base import ProviderRequest
from boothbridge.providers.local.inputs import Operation, decode_input

if TYPE_CHECKING:
    from boothbridge.providers.local import segment

# `segment` and `composite` (OpenCV) are imported when an operation runs: every function builds the local provider
# (bootstrap.build_providers), and only the worker's image has OpenCV (infra/README.md, "The worker image").


def matte_options(settings: dict[str, Any]) -> segment.MatteOptions:
    """The segmentation settings (`feather_px`, `border_adjustment`, `require_face`) with their defaults; raises
    ValueError/TypeError for values out of range or of the wrong type."""
    from boothbridge.providers.local import segment

    return segment.MatteOptions(
        feather_px=float(settings.get("feather_px", segment.DEFAULT_FEATHER_PX)),
        border_px=int(settings.get("border_adjustment", 0)),
        require_face=bool(settings.get("require_face", True)),
    )


def _remove_background(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    from boothbridge.providers.local import segment

    return segment.remove_background(photo, matte_options(request.settings))


def _replace_background(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    from boothbridge.providers.local import composite

    s = request.settings
    options = matte_options(s)  # refused before the template is decoded
    template = decode_input(request.media["template_media_id"], what="template image")
    return composite.replace_background(
        photo, template, x=int(s.get("x", 0)), y=int(s.get("y", 0)), scale=float(s.get("scale", 1)), options=options
    )


OPERATIONS: dict[str, Operation] = {
    "remove_background": _remove_background,
    "replace_background": _replace_background,
}
# Operations whose result is always a PNG (they make transparency or a mask), whatever the `output` setting.
PNG_ONLY: frozenset[str] = frozenset({"remove_background"})
# operation -> (the named image it cannot run without, the message of its `template_missing` error)
REQUIRED_MEDIA: dict[str, tuple[str, str]] = {
    "replace_background": ("template_media_id", "the replace_background template image is missing"),
}
