"""The `fal` provider: fal.ai models through fal's queue API, called with httpx (wire details: `fal.wire`).

Why httpx and not `fal-client`: fal-client builds its queue address as `https://queue.{FAL_RUN_HOST}/` (always
https, a host name only), so it cannot be pointed at a plain-HTTP test server or an arbitrary proxy base; the
documented REST API is small (submit, status, result, cancel) and `FAL_QUEUE_URL` can then be any base.

One attempt: the operation's model (`provider_overrides.fal.model`, or the settings' `model_id`) is sent its JSON
input (`Authorization: Key <key>`). Images travel as our temporary public links when the deployment has a public
address (`request.public_url`: fal fetches them, nothing large in the request body), else as `data:` URIs (fal
accepts them; a local emulator has no address fal could reach). With a webhook URL the job parks under fal's
`request_id` and `result_from_callback` finishes it (the delivery's signature is checked first:
`verify_callback`); without one, the status URL is polled until `COMPLETED` and the result fetched. A request
still running when the attempt's time is up parks the job too: it is picked up again later with its request id
(`ProviderRequest.resume_ref`) and POLLED, never submitted (paid) again — the same safety net catches a webhook that
never came. The request id is handed to the runner as soon as fal accepts the request (`ProviderRequest.submitted`):
an attempt that fails after that (a result download that ran out of tries, a poll that failed) is retried by
resuming the same request, and an operator's cancel of the running job reaches fal's cancel URL. Result files are
downloaded and identified by their bytes (`fal.download`; a download is retried in place, a generation never).
Several images: the first is `image`, the rest `extra`; fal's other JSON is `data`.

Keys: `FAL_KEY=k1,k2`; a key answering 429 is rested (`DEFAULT_REST_SEC` or its Retry-After) and the call moves to
the next key within the attempt; when every key rests: `rate_limited` (retryable). Errors: 401/403 `auth_failed`
and 422/other 4xx `provider_rejected` (not retryable); 5xx `provider_unavailable`, network `provider_unreachable`,
no answer in time `provider_timeout`, an answer not in fal's format `bad_answer` (retryable); a request fal
reports failed (status `error`, webhook `ERROR`) `provider_rejected` with fal's message, not retried. Keys never
appear in messages or logs. Cost: the catalog price (`provider_overrides.fal.price`) per image, per second of
video, or per run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from boothbridge.catalog import Catalog
from boothbridge.providers.base import (
    ImageSource,
    ProviderData,
    ProviderError,
    ProviderParked,
    ProviderRequest,
    ProviderResult,
    retry_hint_seconds,
)
from boothbridge.providers.fal import DECLARATION, wire
from boothbridge.providers.fal.download import identify_image, identify_video, result_fetcher
from boothbridge.providers.fal.signature import FalSignatures, SignatureError
from boothbridge.providers.http_client import LoopClient, provider_client
from boothbridge.providers.quota import Grant, QuotaLimiter, QuotaLimits
from boothbridge.settings import Settings

log = logging.getLogger(__name__)

DEADLINE_MARGIN_SEC = 1.5  # kept back from the attempt so that we, not the runner's hard cancel, report a timeout
DEFAULT_REST_SEC = 30.0  # how long a key that answered 429 without a hint stays out of use


class FalProvider:
    """One per process; one HTTP client (created on first use in each event loop, closed by `close`)."""

    id = "fal"
    poll_interval_sec: float = 1.0
    max_poll_failures: int = 3
    request_timeout_sec: float = 30.0
    connect_timeout_sec: float = 5.0
    callback_wants_job = True  # the webhook service hands `result_from_callback` the job's operation and settings

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self._catalog = catalog
        self._queue = str(DECLARATION.env_value(settings, "FAL_QUEUE_URL")).rstrip("/")
        self.signatures = FalSignatures(str(DECLARATION.env_value(settings, "FAL_JWKS_URL")))
        # One client per process and event loop, with the timeouts in effect when it is made.
        self._http = LoopClient(lambda: provider_client(self.request_timeout_sec, self.connect_timeout_sec))
        self.fetcher = result_fetcher(self._http)
        self.set_keys(DECLARATION.env_keys(settings))

    def set_keys(self, keys: list[str]) -> None:
        """Use these keys from now on (the settings page), with fresh rest bookkeeping."""
        self._keys = list(keys)
        self.quota = QuotaLimiter(len(self._keys), QuotaLimits())

    def __repr__(self) -> str:  # never a key
        return f"FalProvider(queue={self._queue!r}, keys={len(self._keys)})"

    # --- the provider protocol -------------------------------------------------------------------------------

    async def run(self, request: ProviderRequest) -> ProviderResult | ProviderParked | ProviderData:
        if not self._keys:
            raise ProviderError("api_key_missing", "no fal API key is configured", retryable=False)
        budget = request.timeout_sec
        deadline = time.monotonic() + max(budget - DEADLINE_MARGIN_SEC, budget / 2)
        spec, defaults = self._operation(request.operation_id)
        model = self._model(spec, request.settings)
        if request.resume_ref:  # the request was submitted (paid) by an earlier attempt: poll it
            log.info("fal %s: job %s resumes request %s", model, request.job_id, request.resume_ref)
            return await self._finish(spec, model, request.resume_ref, request.settings, deadline, resumed=True)
        images = await self._images(spec, request)
        body = wire.build_input(spec, request.settings, defaults, images)
        url = wire.submit_url(self._queue, model, request.webhook_url)
        try:
            submitted = wire.parse_submit(await self._send("POST", url, deadline, body))
        except wire.WireError as exc:
            raise ProviderError("bad_answer", f"fal {model}: {exc}", retryable=True) from None
        log.info("fal %s: job %s submitted as %s", model, request.job_id, submitted.request_id)
        if request.submitted is not None:  # the job keeps the id: a cancel reaches it, a retry resumes it
            await request.submitted(submitted.request_id)
        if request.webhook_url:
            return ProviderParked(provider_ref=submitted.request_id)
        return await self._finish(spec, model, submitted.request_id, request.settings, deadline)

    async def result_from_callback(
        self,
        payload: dict[str, Any],
        *,
        deadline: float | None = None,
        operation_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> ProviderResult | ProviderData:
        """A webhook delivery (already verified by `verify_callback`): fal's result, its files downloaded by
        `deadline` (the job's). `operation_id`/`settings` are the job's (what came back, and its price)."""
        try:
            body = wire.parse_webhook(payload)
        except wire.WireError as exc:
            raise ProviderError("bad_answer", f"the fal callback is not a result: {exc}", retryable=False) from None
        if not body.ok:
            raise ProviderError(
                "provider_rejected", f"fal: {body.error or 'the request failed'}"[:500], retryable=False
            )
        spec, _ = self._operation(operation_id or "")
        return await self._product(spec, body.payload, dict(settings or {}), math.inf if deadline is None else deadline)

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `ProviderError("callback_unverified")` unless fal signed this delivery (see `fal.signature`)."""
        try:
            await self.signatures.verify(headers, body)
        except SignatureError as exc:
            raise ProviderError("callback_unverified", str(exc), retryable=False) from None

    async def cancel(self, provider_ref: str, operation_id: str, settings: Mapping[str, Any]) -> str:
        """Ask fal to cancel the request (`PUT .../cancel`); returns fal's answer status
        (`CANCELLATION_REQUESTED`, `ALREADY_COMPLETED`...). Raises ProviderError when fal cannot be asked."""
        spec, _ = self._operation(operation_id)
        url = wire.request_url(self._queue, self._model(spec, dict(settings)), provider_ref, "cancel")
        try:
            answer = await self._send("PUT", url, time.monotonic() + self.request_timeout_sec, None, ok=(400,))
        except ProviderError as err:
            if err.code == "provider_rejected":
                return "NOT_FOUND"
            raise
        return str(answer.get("status", "")) if isinstance(answer, dict) else ""

    async def close(self) -> None:
        await self._http.aclose()

    # --- the request -----------------------------------------------------------------------------------------

    def _operation(self, operation_id: str) -> tuple[wire.OperationSpec, dict[str, Any]]:
        op = self._catalog.operation(operation_id)
        if op is None:
            raise ProviderError("unsupported_operation", f"unknown operation {operation_id!r}", retryable=False)
        try:
            spec = wire.operation_spec(op.provider_overrides.get(self.id))
        except wire.WireError as exc:
            raise ProviderError(
                "unsupported_operation", f"fal cannot run {operation_id!r}: {exc}", retryable=False
            ) from None
        props = op.settings_schema.get("properties", {})
        defaults = {name: p["default"] for name, p in props.items() if isinstance(p, dict) and "default" in p}
        return spec, defaults

    @staticmethod
    def _model(spec: wire.OperationSpec, settings: Mapping[str, Any]) -> str:
        try:
            return wire.model_for(spec, dict(settings))
        except wire.WireError as exc:
            raise ProviderError("settings_invalid", f"fal: {exc}", retryable=False) from None

    async def _images(self, spec: wire.OperationSpec, request: ProviderRequest) -> dict[str, str | list[str]]:
        """Each image field's value: a public link, or a `data:` URI when the deployment has no public address."""

        async def link(image: ImageSource) -> str:
            try:
                return await request.public_url(image)
            except ProviderError as err:
                if err.code != "public_links_unavailable":
                    raise
            return wire.data_uri(await image.read(), image.mime)

        out: dict[str, str | list[str]] = {}
        for field, where in spec.images:
            photo = await link(request.photo())
            if where == wire.PHOTO:
                out[field] = photo
            else:
                # The further images in the order the operation's schema lists them (the worker resolves them so).
                out[field] = [photo] + [await link(image) for image in request.media.values()]
        return out

    async def _finish(
        self,
        spec: wire.OperationSpec,
        model: str,
        request_id: str,
        settings: dict[str, Any],
        deadline: float,
        *,
        resumed: bool = False,
    ) -> ProviderResult | ProviderData | ProviderParked:
        """Poll the request until it is done, then fetch and download its result. Still running when the time is
        up: the job parks under the request id (a later attempt resumes the poll instead of paying again)."""
        status_url = wire.request_url(self._queue, model, request_id, "status")
        failures = 0
        while True:
            try:
                status = wire.parse_status(await self._send("GET", status_url, deadline, None, lost_ok=resumed))
            except wire.WireError as exc:
                raise ProviderError("bad_answer", f"fal status of {request_id}: {exc}", retryable=True) from None
            except ProviderError as err:
                if err.code == "provider_timeout":
                    return ProviderParked(provider_ref=request_id)
                if not err.retryable or failures >= self.max_poll_failures:
                    raise
                failures += 1
                continue
            failures = 0
            if status.status == "COMPLETED":
                break
            if deadline - time.monotonic() <= self.poll_interval_sec:
                log.info("fal %s: request %s not done in this attempt's time; parked", model, request_id)
                return ProviderParked(provider_ref=request_id)
            await asyncio.sleep(self.poll_interval_sec)
        if status.error:
            raise ProviderError("provider_rejected", f"fal: {status.error}"[:500], retryable=False)
        payload = await self._send("GET", wire.request_url(self._queue, model, request_id), deadline, None)
        return await self._product(spec, payload, settings, deadline)

    async def _product(
        self, spec: wire.OperationSpec, payload: Any, settings: dict[str, Any], deadline: float
    ) -> ProviderResult | ProviderData:
        try:
            output = wire.parse_output(spec.output, payload, settings.get("duration"))
        except wire.WireError as exc:
            raise ProviderError("no_image", f"fal: {exc}", retryable=False) from None
        if output.finetune_id is not None:
            return ProviderData({"finetune_id": output.finetune_id, **output.data}, spec.cost())
        video = spec.output == "video"
        identify, what = (identify_video, "a video") if video else (identify_image, "an image")
        files = [await self.fetcher.fetch(url, deadline, identify, what) for url in output.urls]
        cost = spec.cost(seconds=output.seconds) if video else spec.cost(images=len(files))
        return ProviderResult(image=files[0], cost=cost, extra=tuple(files[1:]), data=output.data or None)

    # --- HTTP ------------------------------------------------------------------------------------------------

    def _grant(self) -> Grant:
        outcome = self.quota.try_acquire(0)
        if isinstance(outcome, Grant):
            return outcome
        raise ProviderError(
            "rate_limited", "every fal API key is rate limited", retryable=True, retry_after=outcome.wait_sec
        )

    async def _send(
        self,
        method: str,
        url: str,
        deadline: float,
        body: dict[str, Any] | None,
        *,
        ok: tuple[int, ...] = (),
        lost_ok: bool = False,
    ) -> Any:
        """One call with the next key not resting; a 429 rests the key and moves to the next. Returns the JSON."""
        for _ in range(len(self._keys)):
            grant = self._grant()
            self.quota.finish(grant)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderError("provider_timeout", f"no time left for fal ({method})", retryable=True)
            timeout = httpx.Timeout(min(self.request_timeout_sec, remaining), connect=self.connect_timeout_sec)
            headers = {"Authorization": f"Key {self._keys[grant.key]}", "Accept": "application/json"}
            try:
                resp = await self._http().request(method, url, json=body, headers=headers, timeout=timeout)
            except httpx.TimeoutException:
                raise ProviderError("provider_timeout", "fal did not answer in time", retryable=True) from None
            except httpx.HTTPError as exc:
                raise ProviderError(
                    "provider_unreachable", f"cannot reach fal ({type(exc).__name__})", retryable=True
                ) from None
            status = resp.status_code
            if status == 429:
                rest = retry_hint_seconds(resp.headers.get("retry-after")) or DEFAULT_REST_SEC
                log.info("fal key #%d answered 429; resting it for %.0f s", grant.key + 1, rest)
                self.quota.rest(grant.key, rest)
                continue
            try:
                data = resp.json()
            except ValueError:
                data = None
            if status in (401, 403):
                raise ProviderError("auth_failed", f"fal refused the API key (HTTP {status})", retryable=False)
            if status >= 500:
                raise ProviderError("provider_unavailable", f"fal answered HTTP {status}", retryable=True)
            if status == 404 and lost_ok:
                raise ProviderError("provider_request_lost", "fal no longer knows this request", retryable=False)
            if status >= 400 and status not in ok:
                detail = wire.error_detail(data)
                raise ProviderError(
                    "provider_rejected",
                    f"fal refused the request (HTTP {status})" + (f": {detail}" if detail else ""),
                    retryable=False,
                )
            if data is None:
                raise ProviderError("bad_answer", f"fal did not answer JSON ({method})", retryable=True)
            return data
        raise self._grant_error()

    def _grant_error(self) -> ProviderError:
        try:
            self._grant()
        except ProviderError as err:
            return err
        return ProviderError("rate_limited", "fal is rate limiting every key", retryable=True)
