"""A provider's image as the worker and the webhook path accept it: through the image boundary, in the format the
step's settings ask for (`output`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from boothbridge.images import boundary as image_boundary
from boothbridge.images import codec
from boothbridge.providers.base import ImageInput, ProviderError, ProviderResult

log = logging.getLogger(__name__)


async def accepted_result(result: ProviderResult, settings: Mapping[str, object], max_pixels: int) -> ProviderResult:
    """A provider's image through the image boundary (identified by its bytes, fully decoded, in the slot's
    `output` format): what the worker and the webhook path store. An answer that is not a decodable image is the
    provider's fault and retryable (`invalid_result`); one over the pixel limit is final (`result_too_large`)."""
    output = settings.get("output")
    fmt: str | None = None
    quality = image_boundary.DEFAULT_OUTPUT_QUALITY
    if isinstance(output, dict):
        fmt = str(output["format"]) if output.get("format") in ("jpeg", "png") else None
        if isinstance(output.get("quality"), int | float):
            quality = int(output["quality"])
    if codec.accepted_as_is(result.image, fmt, max_pixels):
        # Encoded in this process from normalised pixels (only `codec` makes that type, never from a provider's
        # bytes): the boundary would fully decode it only to hand back the same bytes.
        return ProviderResult(ImageInput(result.image.data, result.image.mime), result.cost)
    try:
        image = await asyncio.to_thread(image_boundary.accept_result, result.image.data, fmt, quality, max_pixels)
    except image_boundary.TooManyPixelsError as exc:
        raise ProviderError("result_too_large", "the provider's image has too many pixels", retryable=False) from exc
    except image_boundary.UndecodableImageError as exc:
        raise ProviderError(
            "invalid_result", f"the provider's answer is not a decodable image ({exc})"[:300], retryable=True
        ) from exc
    except image_boundary.UnencodableImageError as exc:
        # Decoded, but it cannot be delivered in the slot's format: asking the provider again would pay for the same.
        raise ProviderError("result_unusable", str(exc)[:300], retryable=False) from exc
    except Exception as exc:  # a decoder's surprise must end this attempt (and the webhook's request) cleanly
        log.exception("the image boundary failed on a provider's answer")
        raise ProviderError("result_unusable", "the provider's image could not be processed", retryable=False) from exc
    if image.mime != result.image.mime:
        log.info("provider image declared %s, delivered as %s", result.image.mime, image.mime)
    return ProviderResult(ImageInput(image.data, image.mime), result.cost)
