"""The `local` provider's input images as its operations read them (in the worker thread): bytes, then decoded."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from boothbridge.images import codec
from boothbridge.providers.base import ImageInput, ImageSource, ProviderError, ProviderRequest


def image_bytes(image: ImageSource) -> bytes:
    """The bytes of an image `_at_hand` made reachable from the worker thread: in memory, or read from its file."""
    if isinstance(image, ImageInput):
        return image.data
    if image.path is None:  # pragma: no cover - `run` reads such images before the thread starts
        raise RuntimeError("the image must be in memory or in a file")
    return image.path.read_bytes()


def decode_input(
    image: ImageSource, *, what: str, min_size: tuple[int, int] | None = None, data: bytes | None = None
) -> Image.Image:
    """Decode an input image (`data`: its bytes when already read) — a JPEG at no less than `min_size`, see
    `codec.decode` — or raise the non-retryable `image_undecodable` error."""
    try:
        return codec.decode(image_bytes(image) if data is None else data, min_size)
    except codec.UndecodableImageError as exc:
        raise ProviderError("image_undecodable", f"the {what} cannot be decoded", retryable=False) from exc


Operation = Callable[[Image.Image, ProviderRequest], Image.Image]
"""A local operation: the decoded photo and the request (settings, named media) → the result image."""
