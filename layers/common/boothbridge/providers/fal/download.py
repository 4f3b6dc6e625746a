"""fal's result files (`images[].url`, `image.url`, `video.url`: fal's CDN, no credentials): what counts as the
promised bytes, and the fetcher that downloads them (`providers.result_download`: retried in place, never generated
again — a resumed fal request names the same files, so a URL that cannot be fetched is not retryable).

An image is JPEG, PNG or WebP by its bytes (`images.upload.sniff_mime`); a video is an ISO-BMFF file whose first
box is `ftyp`, returned as `video/mp4`.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from boothbridge.images.upload import sniff_mime
from boothbridge.providers.fal.wire import is_video
from boothbridge.providers.result_download import ResultFetcher

IMAGE_MIME = ("image/jpeg", "image/png", "image/webp")
MAX_FILE_BYTES = 200 * 1024 * 1024


def identify_image(data: bytes) -> str | None:
    """The image type of `data` by its bytes, or None."""
    mime = sniff_mime(data)
    return mime if mime in IMAGE_MIME else None


def identify_video(data: bytes) -> str | None:
    """`video/mp4` when `data` is an ISO-BMFF file, else None."""
    return "video/mp4" if is_video(data) else None


def result_fetcher(http: Callable[[], httpx.AsyncClient]) -> ResultFetcher:
    """The fal adapter's fetcher over its HTTP client (limits as `ResultFetcher`'s defaults, 200 MB a file)."""
    return ResultFetcher(http, "fal", noun="result file", bad_url_retryable=False, max_bytes=MAX_FILE_BYTES)
