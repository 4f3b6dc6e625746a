"""Fetching a finished fal result's files (`images[].url`, `image.url`, `video.url`: fal's CDN, no credentials).

A download is not a generation: a file that is not served yet is fetched again in place, never generated again
(the same rules as Turbotext's, see `providers.turbotext.adapter`). Retried with exponential backoff and jitter (a
`Retry-After` is a floor of the wait) on HTTP 404/408/425/429/5xx, network faults, timeouts and a 200 whose bytes
are not what was promised (an HTML error page), while a next try still fits before the deadline (no try starts
with less than `min_try_sec` left). When the tries run out: `result_download_failed` (or `invalid_result`),
retryable — the job's next attempt polls the same fal request again instead of paying for a new one. Not retried:
401/403/410 (`result_download_failed`, not retryable) and a file over `max_bytes` (`result_too_large`).

What counts as the promised bytes: an image (`images.upload.sniff_mime`: JPEG, PNG, WebP) or a video (an ISO-BMFF
file whose first box is `ftyp`, returned as `video/mp4`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from boothbridge.images.upload import sniff_mime
from boothbridge.providers.base import ImageInput, ProviderError, retry_hint_seconds
from boothbridge.providers.fal.wire import is_video

log = logging.getLogger(__name__)

IMAGE_MIME = ("image/jpeg", "image/png", "image/webp")
NOT_READY = frozenset({404, 408, 425, 429})
REFUSED = frozenset({401, 403, 410})


class _NotReady(ProviderError):
    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message, retryable=True, retry_after=retry_after)


def identify(data: bytes, video: bool) -> str | None:
    """The MIME type of a result file by its bytes: `video/mp4` for a video operation, else an image type."""
    if video:
        return "video/mp4" if is_video(data) else None
    mime = sniff_mime(data)
    return mime if mime in IMAGE_MIME else None


class ResultFetcher:
    """Downloads result files with `http()` (the adapter's client). Timings are attributes so tests shorten them."""

    max_bytes: int = 200 * 1024 * 1024
    max_sec: float = 20.0  # in all, whatever the deadline (below the webhook function's 30 s)
    min_try_sec: float = 2.0
    backoff_sec: float = 0.5
    backoff_max_sec: float = 4.0
    request_timeout_sec: float = 30.0

    def __init__(self, http: Callable[[], httpx.AsyncClient]) -> None:
        self.http = http
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def fetch(self, url: str, deadline: float, *, video: bool = False) -> ImageInput:
        """The file at `url`, identified by its bytes, by `deadline` (a `time.monotonic()` value) and within
        `max_sec`. Raises ProviderError as the module docstring says."""
        deadline = min(deadline, time.monotonic() + self.max_sec)
        backoff = wait_exponential_jitter(initial=self.backoff_sec, max=self.backoff_max_sec, jitter=self.backoff_sec)

        def wait(state: RetryCallState) -> float:
            fault = state.outcome.exception() if state.outcome is not None else None
            hint = fault.retry_after if isinstance(fault, ProviderError) else None
            return max(backoff(state), hint or 0.0)

        def stop(state: RetryCallState) -> bool:
            return time.monotonic() + state.upcoming_sleep + self.min_try_sec > deadline

        def before_sleep(state: RetryCallState) -> None:
            fault = state.outcome.exception() if state.outcome is not None else None
            log.info(
                "fal: result download try %d failed (%s), next in %.2f s",
                state.attempt_number,
                fault,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            sleep=self.sleep,
            retry=retry_if_exception_type(_NotReady),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            data: bytes = await retrying(self._once, url, deadline, video)
        except _NotReady as fault:
            tries = retrying.statistics.get("attempt_number", 1)
            raise ProviderError(
                fault.code, f"{fault.message} ({tries} download {'try' if tries == 1 else 'tries'})", retryable=True
            ) from None
        mime = identify(data, video)
        assert mime is not None  # _once returns only bytes that identify
        return ImageInput(data, mime)

    async def _once(self, url: str, deadline: float, video: bool) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _NotReady("result_download_failed", "no time left for the result download")
        timeout = httpx.Timeout(min(self.request_timeout_sec, remaining))
        buf = bytearray()
        try:
            async with self.http().stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
                status = resp.status_code
                if status != 200:
                    message = f"the result file answered HTTP {status}"
                    if status in NOT_READY or status >= 500:
                        hint = retry_hint_seconds(resp.headers.get("retry-after"))
                        raise _NotReady("result_download_failed", message, hint)
                    raise ProviderError("result_download_failed", message, retryable=status not in REFUSED)
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > self.max_bytes:
                        raise ProviderError("result_too_large", "the result file is too large", retryable=False)
        except httpx.TimeoutException:
            raise _NotReady("result_download_failed", "the result download timed out") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise ProviderError(
                "result_download_failed", "the result URL cannot be downloaded from", retryable=False
            ) from None
        except httpx.HTTPError as exc:
            raise _NotReady("result_download_failed", f"cannot download the result ({type(exc).__name__})") from None
        data = bytes(buf)
        if identify(data, video) is None:
            raise _NotReady("invalid_result", f"the result URL did not serve {'a video' if video else 'an image'}")
        return data
