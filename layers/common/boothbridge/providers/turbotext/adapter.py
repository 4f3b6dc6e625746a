"""The `turbotext` provider: Turbotext photo AI (mix_images, deepfake_photo, generate_image2image).

Turbotext downloads our images by URL, so the booth photo and the slot's template are published as temporary
public links first (`request.public_url`). Then `do=create_queue`; with a webhook address the job parks
(`asyncid`) and `result_from_callback` finishes it, otherwise `do=get_result` is polled until the answer is no
longer `{"action":"reconnect"}`. The result image is downloaded from `uploaded_image` (no credentials are sent
there), checked to be an image by its bytes and size, and returned as delivered (the worker's image boundary
decodes it and converts it to the slot's output format). Wire details: `turbotext_wire`.

Errors and whether another attempt may help (each attempt is a new paid generation):
- no API key -> `api_key_missing`; HTTP 401/403 or an error answer about the key -> `auth_failed`: not retryable;
- HTTP 429 -> `rate_limited` (retryable, honours Retry-After); 5xx -> `provider_unavailable`; network faults ->
  `provider_unreachable`; no answer in time -> `provider_timeout`; an answer not in Turbotext's format ->
  `bad_answer`: retryable;
- `{"success":false,"error":...}` or another 4xx -> `provider_rejected` with the provider's message: NOT
  retryable — Turbotext looked at the request and refused it (bad input, no face, balance, plan), and the same
  request would be refused again at a cost;
- a result without an image URL -> `no_image`.
While polling, up to `max_poll_failures` consecutive retryable faults of `get_result` are ridden out in place,
so a blip does not throw away (and pay again for) a generation already under way.

A download is not a generation. The result link of a finished generation (`uploaded_image`, in the webhook
body and in `get_result`'s final answer alike: https://www.turbotext.ru/photo_ai/docs/info) has been seen in the
field to answer 404 once and serve the image a moment later, and Turbotext sends its callback only once. So
fetching the result is retried in place, with exponential backoff and jitter (a `Retry-After` is a floor of the
wait), on HTTP 404/408/425/429/5xx, network faults and timeouts, and a 200 whose bytes are not an image (an HTML
error page), for as long as the time left allows (the attempt's, or on the webhook path the job's, capped at
`max_download_sec`); no try is started that could not get `min_download_try_sec` before that deadline, and no
new generation is started for it. When the tries run out: `result_download_failed` (or `invalid_result` if the
last try got something that is not an image), retryable, with the number of tries in the message. Not retried
in place: a result larger than `max_result_bytes` -> `result_too_large` and HTTP 401/403/410 ->
`result_download_failed`, both not retryable at all (see `providers.result_download`); another 4xx ->
`result_download_failed`, retryable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from boothbridge.catalog import Catalog
from boothbridge.images.upload import sniff_mime
from boothbridge.providers.base import ImageInput, ProviderError, ProviderParked, ProviderRequest, ProviderResult
from boothbridge.providers.http_client import LoopClient, provider_client
from boothbridge.providers.result_download import ResultFetcher
from boothbridge.providers.turbotext import DECLARATION
from boothbridge.providers.turbotext.wire import (
    BOOTH_PHOTO,
    MEDIA_SUFFIX,
    Answer,
    MethodSpec,
    WireError,
    form_value,
    is_auth_error,
    method_spec,
    parse_answer,
    parse_retry_after,
)
from boothbridge.settings import Settings

log = logging.getLogger(__name__)

RESULT_MIME = ("image/jpeg", "image/png", "image/webp")
# Time kept back from the attempt's budget so that we, not the runner's hard cancel, report the timeout.
DEADLINE_MARGIN_SEC = 1.5


def _image_mime(data: bytes) -> str | None:
    """The result's type when its bytes are a JPEG, PNG or WebP image, else None."""
    mime = sniff_mime(data)
    return mime if mime in RESULT_MIME else None


class TurbotextProvider:
    """One per process; holds one HTTP client (created on first use, closed by `close`)."""

    id = "turbotext"
    poll_interval_sec: float = 1.5
    max_poll_failures: int = 3
    max_result_bytes: int = 30 * 1024 * 1024
    request_timeout_sec: float = 30.0
    connect_timeout_sec: float = 5.0
    # Fetching a finished result (see `_download`): at most this long in all — below the webhook function's
    # 30 s (infra/template.yaml: Lambda Timeout and CloudFront's origin read timeout), leaving time to store the
    # result; the attempt's or the job's own deadline is used when it comes sooner.
    max_download_sec: float = 20.0
    # No try is started with less time than this left before the deadline.
    min_download_try_sec: float = 2.0
    # Waits between tries: download_backoff_sec * 2^(n-1) plus up to download_backoff_sec of jitter, at most
    # download_backoff_max_sec (a Retry-After above that is still honoured).
    download_backoff_sec: float = 0.5
    download_backoff_max_sec: float = 4.0

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        keys = DECLARATION.env_keys(settings)
        self._api_key = keys[0] if keys else None
        self._base_url = str(DECLARATION.env_value(settings, "TURBOTEXT_BASE_URL")).rstrip("/")
        self._catalog = catalog  # the method specs (provider_overrides), defaults and price come from it
        # One client per process and event loop, with the timeouts in effect when it is made.
        self._http = LoopClient(lambda: provider_client(self.request_timeout_sec, self.connect_timeout_sec))
        # How the download waits between tries (replaceable, so that tests can record the waits).
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def set_keys(self, keys: list[str]) -> None:
        """Use this key from now on (the settings page); Turbotext takes one bearer key."""
        self._api_key = keys[0] if keys else None

    def __repr__(self) -> str:  # never the key
        return f"TurbotextProvider(base_url={self._base_url!r}, api_key={'set' if self._api_key else 'unset'})"

    # --- the provider protocol -------------------------------------------------------------------------------

    async def run(self, request: ProviderRequest) -> ProviderResult | ProviderParked:
        if not self._api_key:
            raise ProviderError("api_key_missing", "no Turbotext API key is configured", retryable=False)
        budget = request.timeout_sec
        deadline = time.monotonic() + max(budget - DEADLINE_MARGIN_SEC, budget / 2)
        spec, defaults = self._operation(request.operation_id)
        form = await self._create_form(spec, defaults, request)
        answer = await self._call(spec.method, form, deadline)
        if answer.kind == "parked" and answer.ref:
            log.info("turbotext %s: job %s parked as asyncid %s", spec.method, request.job_id, answer.ref)
            return ProviderParked(provider_ref=answer.ref)
        if answer.kind == "error":
            raise self._answer_error(answer)
        if answer.kind == "result" and answer.image_url:  # done at once: nothing to wait for
            return ProviderResult(await self._download(answer.image_url, deadline), self._cost())
        if answer.kind != "queued" or not answer.ref:
            raise ProviderError("bad_answer", f"Turbotext {spec.method} gave no queue number", retryable=True)
        log.info("turbotext %s: job %s queued as %s", spec.method, request.job_id, answer.ref)
        url = await self._poll(spec.method, answer.ref, deadline)
        return ProviderResult(await self._download(url, deadline), self._cost())

    async def result_from_callback(self, payload: dict[str, Any], *, deadline: float | None = None) -> ProviderResult:
        """A webhook delivery: the same JSON as `get_result`'s final answer. The image is downloaded by
        `deadline` (a `time.monotonic()` value: the job's), and within `max_download_sec` in any case."""
        try:
            answer = parse_answer(payload)
        except WireError as exc:
            raise ProviderError(
                "bad_answer", f"the Turbotext callback is not a result: {exc}", retryable=False
            ) from None
        if answer.kind == "error":
            raise self._answer_error(answer)
        if answer.kind != "result" or not answer.image_url:
            raise ProviderError("no_image", "the Turbotext callback carried no result image", retryable=True)
        image = await self._download(answer.image_url, math.inf if deadline is None else deadline)
        return ProviderResult(image, self._cost())

    async def close(self) -> None:
        await self._http.aclose()

    # --- the request -----------------------------------------------------------------------------------------

    def _operation(self, operation_id: str) -> tuple[MethodSpec, dict[str, Any]]:
        """The method and field mapping from the catalog, and the settings' schema defaults."""
        op = self._catalog.operation(operation_id)
        if op is None:
            raise ProviderError("unsupported_operation", f"unknown operation {operation_id!r}", retryable=False)
        try:
            spec = method_spec(op.provider_overrides.get(self.id))
        except WireError as exc:
            raise ProviderError(
                "unsupported_operation", f"Turbotext cannot run {operation_id!r}: {exc}", retryable=False
            ) from None
        props = op.settings_schema.get("properties", {})
        defaults = {name: p["default"] for name, p in props.items() if isinstance(p, dict) and "default" in p}
        return spec, defaults

    def _cost(self) -> float:
        entry = self._catalog.provider(self.id)
        try:
            return float((entry.pricing if entry else {}).get("per_image", 0) or 0)
        except (TypeError, ValueError):
            return 0.0

    async def _create_form(
        self, spec: MethodSpec, defaults: dict[str, Any], request: ProviderRequest
    ) -> dict[str, str]:
        form = {"do": "create_queue"}
        published: dict[str, str] = {}  # each image is published once, however many fields name it
        for field, source in spec.fields:
            if source == BOOTH_PHOTO or source.endswith(MEDIA_SUFFIX):
                if source not in published:
                    image = request.photo() if source == BOOTH_PHOTO else request.media.get(source)
                    if image is None:
                        raise ProviderError("template_missing", f"the slot has no image {source}", retryable=False)
                    published[source] = await request.public_url(image)
                form[field] = published[source]
                continue
            value = request.settings.get(source, defaults.get(source))
            if value is not None and value != "":
                form[field] = form_value(value)
        if request.webhook_url:
            form["webhook"] = request.webhook_url
        return form

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _timeout(self, deadline: float, what: str) -> httpx.Timeout:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderError("provider_timeout", f"no time left for {what}", retryable=True)
        return httpx.Timeout(min(self.request_timeout_sec, remaining), connect=min(self.connect_timeout_sec, remaining))

    async def _call(self, method: str, form: dict[str, str], deadline: float) -> Answer:
        """One POST to `{base}/{method}`; HTTP-level failures become typed errors, the body an Answer."""
        timeout = self._timeout(deadline, f"Turbotext {method}")
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        try:
            resp = await self._http().post(f"{self._base_url}/{method}", data=form, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise ProviderError(
                "provider_timeout", f"Turbotext {method} did not answer in time", retryable=True
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                "provider_unreachable", f"cannot reach Turbotext ({type(exc).__name__})", retryable=True
            ) from None
        status = resp.status_code
        if status in (401, 403):
            raise ProviderError("auth_failed", f"Turbotext refused the API key (HTTP {status})", retryable=False)
        if status == 429:
            raise ProviderError(
                "rate_limited",
                "Turbotext is rate limiting this key",
                retryable=True,
                retry_after=parse_retry_after(resp.headers.get("retry-after")),
            )
        if status >= 500:
            raise ProviderError("provider_unavailable", f"Turbotext answered HTTP {status}", retryable=True)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if status >= 400:
            detail = data.get("error") if isinstance(data, dict) else None
            message = f"Turbotext refused the request (HTTP {status})" + (f": {str(detail)[:300]}" if detail else "")
            raise ProviderError("provider_rejected", message, retryable=False)
        if data is None:
            raise ProviderError("bad_answer", f"Turbotext {method} did not answer JSON", retryable=True)
        try:
            return parse_answer(data)
        except WireError as exc:
            raise ProviderError("bad_answer", f"Turbotext {method}: {exc}", retryable=True) from None

    @staticmethod
    def _answer_error(answer: Answer) -> ProviderError:
        message = answer.error or "the provider reported an error"
        if is_auth_error(message):
            return ProviderError("auth_failed", f"Turbotext refused the API key: {message}", retryable=False)
        return ProviderError("provider_rejected", f"Turbotext: {message}", retryable=False)

    async def _poll(self, method: str, queue_id: str, deadline: float) -> str:
        """`get_result` until the answer is not `reconnect`; returns the result image URL."""
        failures = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderError(
                    "provider_timeout", f"Turbotext queue {queue_id} was not done in time", retryable=True
                )
            await asyncio.sleep(min(self.poll_interval_sec, remaining))
            try:
                answer = await self._call(method, {"do": "get_result", "queueid": queue_id}, deadline)
            except ProviderError as err:
                if not err.retryable or failures >= self.max_poll_failures:
                    raise
                failures += 1
                log.info("turbotext %s: get_result of %s failed (%s), polling on", method, queue_id, err.code)
                if err.retry_after:
                    await asyncio.sleep(min(err.retry_after, max(deadline - time.monotonic(), 0.0)))
                continue
            failures = 0
            if answer.kind == "reconnect":
                continue
            if answer.kind == "error":
                raise self._answer_error(answer)
            if answer.kind == "result":
                if not answer.image_url:
                    raise ProviderError(
                        "no_image", f"Turbotext queue {queue_id} finished without an image", retryable=True
                    )
                return answer.image_url
            raise ProviderError("bad_answer", f"unexpected get_result answer ({answer.kind})", retryable=True)

    async def _download(self, url: str, deadline: float) -> ImageInput:
        """The result image from its URL (Turbotext's public download link: no credentials are sent there),
        tried again while the link is not ready (`providers.result_download`) until `deadline`, at most
        `max_download_sec` from now; bounded in size and checked by its bytes to be an image."""
        fetcher = ResultFetcher(
            self._http,
            "turbotext",
            noun="result image",
            bad_url_retryable=True,  # another generation gives another link
            max_bytes=self.max_result_bytes,
            max_sec=self.max_download_sec,
            min_try_sec=self.min_download_try_sec,
            backoff_sec=self.download_backoff_sec,
            backoff_max_sec=self.download_backoff_max_sec,
            request_timeout_sec=self.request_timeout_sec,
            connect_timeout_sec=self.connect_timeout_sec,
            sleep=self.sleep,
        )
        return await fetcher.fetch(url, deadline, _image_mime, "a JPEG, PNG or WebP image")
