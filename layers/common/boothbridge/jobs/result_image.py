"""A provider's media as the worker and the webhook path accept it: an image through the image boundary, in the
format the step's settings ask for (`output`); a video (an ISO-BMFF `ftyp` file that is not a HEIF/AVIF still,
identified by its bytes) as it is, as `video/mp4` (`video/quicktime` for a QuickTime brand). Further outputs
(`extra`) are accepted the same way each, and the result's `data` is kept (issue 15)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace

from boothbridge.images import boundary as image_boundary
from boothbridge.images import codec
from boothbridge.providers.base import ImageInput, ProviderError, ProviderResult

log = logging.getLogger(__name__)

# ISO-BMFF brands of still images (HEIF, HEIC, AVIF): a `ftyp` file with one of these is an image, not a video.
_STILL_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heif", b"avif", b"avis"})


def video_mime(data: bytes) -> str | None:
    """`video/mp4` (or `video/quicktime`) when `data` is an ISO-BMFF video by its bytes (a `ftyp` box first whose
    major brand is not a still image's), else None."""
    if len(data) < 12 or data[4:8] != b"ftyp" or data[8:12] in _STILL_BRANDS:
        return None
    return "video/quicktime" if data[8:12] == b"qt  " else "video/mp4"


async def accepted_result(result: ProviderResult, settings: Mapping[str, object], max_pixels: int) -> ProviderResult:
    """A provider's result as the worker and the webhook path store it: its primary output and each of its
    further outputs (`extra`) accepted by `accepted_media`; its cost and `data` kept."""
    image = await accepted_media(result.image, settings, max_pixels)
    extra = tuple([await accepted_media(item, settings, max_pixels) for item in result.extra])
    return replace(result, image=image, extra=extra)


async def accepted_media(media: ImageInput, settings: Mapping[str, object], max_pixels: int) -> ImageInput:
    """One output: a video (`video_mime`) as it is; an image through the image boundary (identified by its bytes,
    fully decoded, in the slot's `output` format). An answer that is neither a video nor a decodable image is the
    provider's fault and retryable (`invalid_result`); an image over the pixel limit is final
    (`result_too_large`)."""
    video = video_mime(media.data)
    if video is not None:
        return ImageInput(media.data, video)
    output = settings.get("output")
    fmt: str | None = None
    quality = image_boundary.DEFAULT_OUTPUT_QUALITY
    if isinstance(output, dict):
        fmt = str(output["format"]) if output.get("format") in ("jpeg", "png") else None
        if isinstance(output.get("quality"), int | float):
            quality = int(output["quality"])
    if codec.accepted_as_is(media, fmt, max_pixels):
        # Encoded in this process from normalised pixels (only `codec` makes that type, never from a provider's
        # bytes): the boundary would fully decode it only to hand back the same bytes.
        return ImageInput(media.data, media.mime)
    try:
        image = await asyncio.to_thread(image_boundary.accept_result, media.data, fmt, quality, max_pixels)
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
    if image.mime != media.mime:
        log.info("provider image declared %s, delivered as %s", media.mime, image.mime)
    return ImageInput(image.data, image.mime)
