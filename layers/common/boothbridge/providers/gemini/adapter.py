"""The `gemini` provider: image editing with `models.generate_content` through the google-genai SDK.

Operations (parts in this order, the text prompt last): `change_image` [photo, prompt], `style_transfer`
[photo, style reference, prompt], `combine_images` [photo, second image, prompt]. Images travel inline while the
whole request stays under 20 MB, else through the Files API (uploaded with the key that makes the call, deleted
afterwards). Several API keys (`GEMINI_API_KEY=k1,k2`) are used round robin under the catalog's client-side
quotas; a key answering 429 is rested and the call moves on to the next key within the same attempt.

How long a refused key rests depends on what Gemini said (see `gemini_wire` for the error model and its
documentation): a per-minute 429 (or one without `QuotaFailure`) rests it for the `Retry-After` /
`RetryInfo.retryDelay` hint (else `DEFAULT_REST_SEC`); a per-day quota violation rests it until the daily
reset, midnight Pacific time, as a *day* rest — that key is spent, not rate limited, and is not called again
before then. When every key is spent for the day the attempt fails at once with `quota_exhausted` (not
retryable, `quota_scope="day"`, the quota's id and `resets_at`), without another paid call; when every key
still usable today is resting briefly it fails with `rate_limited` (retryable, `quota_scope="minute"`,
`retry_after` and `resets_at` = when the first key is free).

Errors (`ProviderError.code`): `api_key_missing`, `settings_invalid`, `template_missing`, `image_undecodable`,
`bad_request`, `auth_failed`, `safety_blocked`, `quota_exhausted` (final); `no_image`, `bad_answer` (a body that
is not JSON, or JSON that is not an answer), `rate_limited`, `provider_unavailable`, `network_error`,
`file_processing_failed` (retryable). API keys never appear in messages or logs: keys are referred to by their
position only.

Memory: the worker hands the photo (and a slot's image) as a spool file or the stored object; this adapter reads
the bytes when it plans the call (their size and pixel count decide inline or upload, and the token estimate the
quota takes) and holds them until the call returns. That is inherent for inline data, which travels inside the
request body; an image uploaded through the Files API is held for the call too (the SDK takes bytes).

The SDK (google-genai: ~0.3 s and ~30 MiB to import) is loaded with the first client (`_client`), i.e. at the
first call: every process builds this adapter, and one where Gemini is never called never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from boothbridge.catalog import Catalog
from boothbridge.providers.base import (
    ImageInput,
    ImageSource,
    ProviderError,
    ProviderRequest,
    ProviderResult,
    in_memory,
)
from boothbridge.providers.gemini import DECLARATION, wire
from boothbridge.providers.quota import Blocked, Grant, QuotaBlocked, QuotaLimiter, QuotaLimits
from boothbridge.settings import Settings

if TYPE_CHECKING:
    from google import genai
    from google.genai import types

# The SDK's async transport is an httpx client we own (else it would pick aiohttp or httpx2, whichever is installed).
_NETWORK_ERRORS = (httpx.HTTPError, OSError, TimeoutError)

log = logging.getLogger(__name__)

API_VERSION = "v1beta"  # the REST reference documents imageConfig and the Files API under v1beta
DEFAULT_REST_SEC = 60.0  # how long a key that answered 429 without a hint stays out of use
MIN_REST_SEC = 1.0
FILE_DELETE_TIMEOUT_SEC = 10.0


class GeminiProvider:
    """Gemini adapter. Built once per process; SDK clients are created on first use, one per key, and reused."""

    id = "gemini"
    inline_limit = wire.INLINE_REQUEST_LIMIT  # request bytes above which images go through the Files API
    file_poll_sec = 0.5  # files.get interval while an uploaded file is PROCESSING

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        catalog = catalog if catalog is not None else Catalog.load(settings.providers_config)
        entry = catalog.provider(self.id)
        self._pricing: dict[str, Any] = dict(entry.pricing) if entry is not None else {}
        self._timeout_sec = entry.ingest.timeout_sec if entry is not None else 60.0
        self._keys = DECLARATION.env_keys(settings)
        self._base_url = DECLARATION.env_value(settings, "GEMINI_BASE_URL")
        self._limits = QuotaLimits.from_catalog(entry.limits if entry is not None else {})
        self.quota = QuotaLimiter(len(self._keys), self._limits)
        # The daily-quota refusal each day-rested key got from Gemini (what the final error names).
        self._spent: dict[int, ProviderError] = {}
        self._clients: dict[int, genai.Client] = {}
        self._http: list[httpx.AsyncClient] = []
        self._cleanups: set[asyncio.Task[None]] = set()

    def set_keys(self, keys: list[str]) -> None:
        """Use these keys from now on (the settings page): fresh clients and fresh quota windows per key."""
        self._keys = list(keys)
        self.quota = QuotaLimiter(len(self._keys), self._limits)
        self._spent = {}
        self._clients = {}  # their HTTP clients stay in self._http and are closed by close()

    def _client(self, key: int) -> genai.Client:
        client = self._clients.get(key)
        if client is None:
            # The SDK is imported here, with the first client (see the module docstring).
            from google import genai
            from google.genai import types

            http = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout_sec, connect=10.0))
            self._http.append(http)
            options = types.HttpOptions(
                api_version=API_VERSION,
                timeout=int(self._timeout_sec * 1000),
                # One HTTP try per call: retries belong to the job queue (and 429s to the key rotation).
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=http,
            )
            if self._base_url:
                options.base_url = self._base_url
            client = genai.Client(api_key=self._keys[key], http_options=options)
            self._clients[key] = client
        return client

    async def run(self, request: ProviderRequest) -> ProviderResult:
        """One attempt: plan the parts, take a key under the quotas, call generateContent, read the image."""
        if not self._keys:
            raise ProviderError("api_key_missing", "no Gemini API key is configured", retryable=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_sec
        # The images' bytes, read now: the plan measures them and the call sends them (see the module docstring).
        media: dict[str, ImageSource] = {name: await in_memory(image) for name, image in request.media.items()}
        request = replace(request, source=await in_memory(request.photo()), media=media)
        plan = await asyncio.to_thread(wire.plan_call, request, self.inline_limit)
        refusals = 0
        while True:
            # No paid call starts after `start_by` (the runner's clock is time.monotonic, as the loop's).
            start_by = min(deadline, request.start_by) if request.start_by is not None else deadline
            grant = await self._acquire(plan.tokens, start_by - loop.time())
            try:
                response = await self._generate(grant.key, plan, deadline)
            except ProviderError as err:
                self.quota.finish(grant)
                if err.code == "quota_exhausted" and err.quota_scope == "day" and err.resets_at is not None:
                    rest = max((err.resets_at - datetime.now(UTC)).total_seconds(), MIN_REST_SEC)
                    log.warning(
                        "gemini key #%d exhausted its daily quota %s; resting it until %s",
                        grant.key + 1,
                        err.quota_id,
                        err.resets_at.isoformat(),
                    )
                    self.quota.rest(grant.key, rest, "day")
                    self._spent[grant.key] = err
                elif err.code == "rate_limited":
                    rest = max(err.retry_after if err.retry_after is not None else DEFAULT_REST_SEC, MIN_REST_SEC)
                    log.info("gemini key #%d answered 429; resting it for %.0fs", grant.key + 1, rest)
                    self.quota.rest(grant.key, rest)
                else:
                    raise
                refusals += 1
                if refusals > len(self._keys):  # a backstop (keys rested only briefly): stop hammering
                    raise
                continue  # the next key that is not rested; rate_limited / quota_exhausted once none is left
            except BaseException:  # cancelled (attempt timeout, lease lost): the call may have reached gemini
                self.quota.finish(grant)
                raise
            prompt_tokens, output_tokens = wire.usage(response)
            self.quota.finish(grant, prompt_tokens)
            image = wire.read_image(response, self._keys)
            return ProviderResult(image=image, cost=wire.call_cost(self._pricing, prompt_tokens, output_tokens))

    async def _acquire(self, tokens: int, max_wait: float) -> Grant:
        try:
            return await self.quota.acquire(tokens, max(max_wait, 0.0))
        except QuotaBlocked as blocked:
            raise self._quota_error(blocked.blocked) from None

    def _quota_error(self, blocked: Blocked) -> ProviderError:
        """Why no key may take the call: every key spent for the day (by Gemini's word or our own daily window),
        or every key still usable today resting / over a minute window."""
        now = datetime.now(UTC)
        resets_at = _at_second(now + timedelta(seconds=blocked.wait_sec)) if math.isfinite(blocked.wait_sec) else None
        if blocked.reason == "day":
            spent = [
                err for key, err in sorted(self._spent.items()) if self.quota.rested(key) == "day" and err.quota_id
            ]
            if spent:  # Gemini said so: name its quota (the soonest to reset), and when the first key is free again
                first = min(spent, key=lambda err: err.resets_at or now)
                if len(spent) == len(self._keys):
                    reset, message = first.resets_at, f"every Gemini API key is spent for the day: {first.message}"
                else:  # some keys are over our own daily window instead
                    reset = resets_at
                    message = (
                        "every Gemini API key is spent for the day (the first is usable again at "
                        f"{reset.isoformat() if reset else 'an unknown time'}): {first.message}"
                    )
                return ProviderError(
                    "quota_exhausted",
                    message,
                    retryable=False,
                    quota_scope="day",
                    quota_id=first.quota_id,
                    resets_at=reset,
                )
            limit = self._limits.requests_per_day
            return ProviderError(
                "quota_exhausted",
                f"every Gemini API key has used its daily request quota (the catalog's requests_per_day: {limit}); "
                f"the first key is usable again at {resets_at.isoformat() if resets_at else 'an unknown time'}",
                retryable=False,
                quota_scope="day",
                quota_id="requests_per_day",
                resets_at=resets_at,
            )
        reason = "every Gemini API key is rate limited" if blocked.reason == "rested" else "the Gemini quota is full"
        return ProviderError(
            "rate_limited",
            reason,
            retryable=True,
            retry_after=blocked.wait_sec,
            quota_scope="minute",
            resets_at=resets_at,
        )

    async def _generate(self, key: int, plan: wire.CallPlan, deadline: float) -> types.GenerateContentResponse:
        from google.genai import errors, types  # the SDK, loaded on first use (see the module docstring)

        client = self._client(key)
        uploaded: list[str] = []
        try:
            parts: list[types.Part] = []
            for planned in plan.images:
                if planned.upload:
                    file = await self._upload(client, planned.image, deadline, uploaded)
                    parts.append(types.Part.from_uri(file_uri=str(file.uri), mime_type=planned.image.mime))
                else:
                    parts.append(types.Part.from_bytes(data=planned.image.data, mime_type=planned.image.mime))
            parts.append(types.Part.from_text(text=plan.prompt))
            return await client.aio.models.generate_content(
                model=plan.model,
                contents=types.Content(role="user", parts=parts),
                config=wire.generation_config(plan),
            )
        except errors.APIError as err:
            raise wire.error_from_api(err, self._keys) from None
        except ValueError as err:  # JSONDecodeError, pydantic's ValidationError, UnknownApiResponseError
            answer = wire.answer_error(err, self._keys)
            if answer is None:
                raise  # not about Gemini's answer: ours to fix
            raise answer from None
        except _NETWORK_ERRORS as err:
            detail = wire.scrub(str(err) or type(err).__name__, self._keys)[:200]
            raise ProviderError("network_error", f"cannot reach gemini: {detail}", retryable=True) from None
        finally:
            if uploaded:
                self._delete_later(client, uploaded)

    async def _upload(self, client: genai.Client, image: ImageInput, deadline: float, names: list[str]) -> types.File:
        """Resumable upload through the Files API; wait until the file is ACTIVE."""
        from google.genai import types  # the SDK, loaded on first use (see the module docstring)

        file = await client.aio.files.upload(
            file=io.BytesIO(image.data), config=types.UploadFileConfig(mime_type=image.mime)
        )
        if file.name:
            names.append(file.name)
        loop = asyncio.get_running_loop()
        while file.state != types.FileState.ACTIVE:
            if file.state == types.FileState.FAILED or not file.name:
                raise ProviderError(
                    "file_processing_failed", "gemini could not process an uploaded image", retryable=True
                )
            if loop.time() + self.file_poll_sec > deadline:
                raise ProviderError("file_processing_failed", "an uploaded image did not become active", retryable=True)
            await asyncio.sleep(self.file_poll_sec)
            file = await client.aio.files.get(name=file.name)
        return file

    def _delete_later(self, client: genai.Client, names: list[str]) -> None:
        """Best-effort deletion of uploaded files, in the background so a timed-out attempt is not held up."""

        async def delete() -> None:
            for name in names:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aio.files.delete(name=name), FILE_DELETE_TIMEOUT_SEC)

        task = asyncio.get_running_loop().create_task(delete())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def close(self) -> None:
        """Finish pending file deletions and close the SDK clients' HTTP sessions."""
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=FILE_DELETE_TIMEOUT_SEC)
        clients, self._clients = list(self._clients.values()), {}
        http, self._http = self._http, []
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aio.aclose()
            with contextlib.suppress(Exception):
                client.close()
        for session in http:
            await session.aclose()


def _at_second(moment: datetime) -> datetime:
    """`moment` rounded to the nearest whole second (the limiter's monotonic clock drifts by microseconds)."""
    return (moment + timedelta(microseconds=500_000)).replace(microsecond=0)
