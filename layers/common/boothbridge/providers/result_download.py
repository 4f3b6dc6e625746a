"""Fetching a provider's finished result file from the URL it gave (Turbotext's `uploaded_image`, fal's CDN files):
no credentials are sent there, and a download is not a generation.

A result link has been seen to answer 404 once and serve the file a moment later, so a fetch is retried in place,
with exponential backoff and jitter (a `Retry-After` is a floor of the wait; tenacity), on HTTP 404/408/425/429/5xx,
network faults, timeouts and a 200 whose bytes are not what was promised (an HTML error page), while a next try
still fits before the deadline: no try starts with less than `min_try_sec` left, and the whole fetch takes at most
`max_sec`. When the tries run out: `result_download_failed` (or `invalid_result` if the last try got the wrong
kind of bytes), retryable, with the number of tries and the time taken in the message. Not retried: a file over
`max_bytes` -> `result_too_large` and HTTP 401/403/410 -> `result_download_failed`, neither retryable at all;
another 4xx -> `result_download_failed`, retryable. A URL httpx cannot fetch (another scheme, malformed) is
`result_download_failed`, retryable or not as the provider says (`bad_url_retryable`: a new Turbotext generation
gives a new link, a resumed fal request the same one). No time left at all -> `provider_timeout`, retryable.

What the promised bytes are is the caller's `identify(data) -> mime | None` (None: not it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from boothbridge.providers.base import ImageInput, ProviderError, retry_hint_seconds

log = logging.getLogger(__name__)

# A link that answers these may serve the file on a later try: not there yet (404, 425 Too Early), slow or busy
# (408, 429, 5xx).
NOT_READY = frozenset({404, 408, 425, 429})
# A link that answers these will not serve this client, now or later: refused (401/403 — the link carries no
# credentials of ours to fix) or gone for good (410). Neither another try nor another generation is expected to help.
REFUSED = frozenset({401, 403, 410})

Identify = Callable[[bytes], str | None]


class _NotReady(ProviderError):
    """One try failed in a way a later try of the same link may not."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message, retryable=True, retry_after=retry_after)


class ResultFetcher:
    """Downloads result files with `http()` (the adapter's client), as the module docstring says. `provider` names
    the log lines, `noun` the messages ("result image", "result file"). The limits are attributes, so that an
    adapter and tests can tune them; `sleep` is replaceable so that tests can record the waits."""

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        provider: str,
        *,
        noun: str,
        bad_url_retryable: bool,
        max_bytes: int,
        max_sec: float = 20.0,
        min_try_sec: float = 2.0,
        backoff_sec: float = 0.5,
        backoff_max_sec: float = 4.0,
        request_timeout_sec: float = 30.0,
        connect_timeout_sec: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.provider = provider
        self.noun = noun
        self.bad_url_retryable = bad_url_retryable
        self.max_bytes = max_bytes
        self.max_sec = max_sec
        self.min_try_sec = min_try_sec
        self.backoff_sec = backoff_sec
        self.backoff_max_sec = backoff_max_sec
        self.request_timeout_sec = request_timeout_sec
        self.connect_timeout_sec = connect_timeout_sec
        self.sleep = sleep

    async def fetch(self, url: str, deadline: float, identify: Identify, what: str) -> ImageInput:
        """The file at `url`, identified by its bytes (`identify`; `what` names the kind in messages, e.g. "a
        video"), by `deadline` (a `time.monotonic()` value) and within `max_sec`. Raises ProviderError as the
        module docstring says."""
        deadline = min(deadline, time.monotonic() + self.max_sec)
        backoff = wait_exponential_jitter(initial=self.backoff_sec, max=self.backoff_max_sec, jitter=self.backoff_sec)

        def wait(state: RetryCallState) -> float:
            fault = state.outcome.exception() if state.outcome is not None else None
            hint = fault.retry_after if isinstance(fault, ProviderError) else None
            return max(backoff(state), hint or 0.0)  # the link's own Retry-After is a floor

        def stop(state: RetryCallState) -> bool:  # `upcoming_sleep` is the wait just chosen
            return time.monotonic() + state.upcoming_sleep + self.min_try_sec > deadline

        earlier: list[str] = []  # what each failed try said, for the final message

        def before_sleep(state: RetryCallState) -> None:
            fault = state.outcome.exception() if state.outcome is not None else None
            if isinstance(fault, _NotReady):
                earlier.append(fault.message)
            log.info(
                "%s: result download try %d failed (%s), next in %.2f s",
                self.provider,
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
        started = time.monotonic()
        try:
            data: bytes = await retrying(self._once, url, deadline, identify, what)
        except _NotReady as fault:
            tries = retrying.statistics.get("attempt_number", 1)
            # The last try may fail otherwise than the rest (cut off by the deadline while the link kept answering
            # 404): the operator sees both.
            before = [message for message in dict.fromkeys(earlier) if message != fault.message]
            raise ProviderError(
                fault.code,
                f"{fault.message} ({tries} download {'try' if tries == 1 else 'tries'}"
                f" in {time.monotonic() - started:.1f} s" + (f"; earlier: {'; '.join(before)})" if before else ")"),
                retryable=True,
            ) from None
        mime = identify(data)
        assert mime is not None  # _once returns only bytes that identify
        return ImageInput(data, mime)

    async def _once(self, url: str, deadline: float, identify: Identify, what: str) -> bytes:
        """One GET of the file: its bytes if they are what was promised, `_NotReady` if a later try may do better."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderError("provider_timeout", "no time left for the result download", retryable=True)
        timeout = httpx.Timeout(
            min(self.request_timeout_sec, remaining), connect=min(self.connect_timeout_sec, remaining)
        )
        buf = bytearray()
        try:
            async with self.http().stream("GET", url, timeout=timeout, follow_redirects=True) as resp:
                status = resp.status_code
                if status != 200:
                    message = f"the {self.noun} answered HTTP {status}"
                    if status in NOT_READY or status >= 500:
                        raise _NotReady(
                            "result_download_failed", message, retry_hint_seconds(resp.headers.get("retry-after"))
                        )
                    raise ProviderError("result_download_failed", message, retryable=status not in REFUSED)
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise ProviderError("result_too_large", f"the {self.noun} is too large", retryable=False)
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > self.max_bytes:
                        raise ProviderError("result_too_large", f"the {self.noun} is too large", retryable=False)
        except httpx.TimeoutException:
            raise _NotReady("result_download_failed", "the result download timed out") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise ProviderError(
                "result_download_failed", "the result URL cannot be downloaded from", retryable=self.bad_url_retryable
            ) from None
        except httpx.HTTPError as exc:
            raise _NotReady("result_download_failed", f"cannot download the result ({type(exc).__name__})") from None
        data = bytes(buf)
        if identify(data) is None:  # e.g. an HTML error page served with 200
            raise _NotReady("invalid_result", f"the result URL did not serve {what}")
        return data
