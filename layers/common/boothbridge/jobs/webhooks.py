"""Provider callbacks: a result delivered to `/webhooks/{provider_id}/{token}` completes its parked job, or moves it
to its pipeline's next step (`jobs.steps`: the next step runs on the queue and the waiting booth gets the final
image), exactly as the worker does after a call.

The token is `<job id>.<secret>`, one per attempt; only its sha256 is stored. An unknown or forged token
changes nothing; a duplicate delivery finds the job finished and is acknowledged without a second completion.
A provider that has to download the delivered result is given the job's deadline for it.

A provider whose deliveries are signed (`SignedCallbackProvider`: fal) has each delivery's raw body and headers
checked before the token is even looked at: an unsigned, forged or stale one is refused with 401
`callback_unverified` and changes nothing. For such a provider a repeated delivery of a job that has ended (a
replay of a valid delivery) is refused with 409 `callback_replayed`, again changing nothing. A provider that
wants to know what it is finishing (`callback_wants_job`) is handed the job's operation and settings.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.jobs.callbacks import CallbackQueue, job_id_from_token, same_token, token_hash
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.result_image import accepted_result
from boothbridge.jobs.retry import RetryPolicy
from boothbridge.jobs.step_statements import COMPLETE_DATA_BY_CALLBACK, OUTPUTS_BY_CALLBACK
from boothbridge.jobs.steps import Fence, PipelineSteps, plan
from boothbridge.media.service import MediaService
from boothbridge.platform.logs import bind_job
from boothbridge.providers.base import (
    CallbackProvider,
    Provider,
    ProviderData,
    ProviderError,
    SignedCallbackProvider,
)
from boothbridge.settings import Settings
from boothbridge.tasks.outputs import has_further, is_task, record_further

log = logging.getLogger(__name__)

# A result delivered when the job's own time is (nearly) up still gets this long to be fetched: the provider's
# work is done and paid for, and a result is kept for the booth's re-post of the photo (no retry would follow).
MIN_RESULT_FETCH_SEC = 5.0


@dataclass(frozen=True)
class Delivery:
    """What became of a delivery: `completed`, `failed` (the provider reported a failure, or the result could not
    be used, and no attempt may follow), `requeued` (another attempt will run), `moved` (the job went on to its
    next step, or to an alternative of this one), or `duplicate`."""

    job_id: str
    outcome: str


def _refused() -> AppError:
    # One answer for every unknown/forged/mismatched token: nothing tells a prober which part was wrong.
    return AppError(404, "unknown_callback", "no job is waiting for this callback")


class WebhookService:
    """Completes parked jobs from provider callbacks. Built once per process by `boothbridge.bootstrap`."""

    def __init__(
        self,
        *,
        settings: Settings,
        retry: RetryPolicy,
        catalog: Catalog,
        providers: Mapping[str, Provider],
        queue: JobQueue,
        callbacks: CallbackQueue,
        media: MediaService,
        hub: NotificationHub | None,
    ) -> None:
        self.settings = settings
        self.retry = retry  # the same policy as the worker's
        self.catalog = catalog
        self.providers = providers
        self.queue = queue
        self.media = media
        self.hub = hub  # wakes this process's waiters at once (others by the NOTIFY)
        self.callbacks = callbacks
        self.steps = PipelineSteps(media, catalog)

    async def deliver(
        self,
        provider_id: str,
        token: str,
        payload: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Delivery:
        """`headers` (lower-case names) and `body` (the raw bytes) are what a signed delivery is checked on."""
        provider = self.providers.get(provider_id)
        signed = isinstance(provider, SignedCallbackProvider)
        if signed:
            try:
                await provider.verify_callback(headers or {}, body if body is not None else b"")  # type: ignore[union-attr]
            except ProviderError as err:
                log.warning("%s callback refused: %s", provider_id, err.message)
                raise AppError(401, "callback_unverified", "the callback's signature could not be verified") from None
        job_id = job_id_from_token(token)
        if job_id is None:
            raise _refused()
        bind_job(job_id)  # every later line of this request names the job (a forged token's id changes nothing)
        target = await self.callbacks.target(job_id)
        if target is None or target.provider_id != provider_id or not same_token(target.webhook_token_hash, token):
            raise _refused()
        if target.status.is_terminal:
            if signed:
                raise AppError(409, "callback_replayed", "this job has already ended", {"job_id": str(job_id)})
            return Delivery(str(job_id), "duplicate")
        if provider is None or not hasattr(provider, "result_from_callback"):
            raise _refused()
        callback_provider: CallbackProvider = provider  # type: ignore[assignment]
        hash_ = token_hash(token)
        job = await self.queue.get(job_id)
        deadline = None
        if job is not None:
            to_deadline = (job.deadline_at - datetime.now(UTC)).total_seconds()
            deadline = time.monotonic() + max(to_deadline, MIN_RESULT_FETCH_SEC)
        try:
            if getattr(provider, "callback_wants_job", False) and job is not None:
                result = await callback_provider.result_from_callback(
                    payload, deadline=deadline, operation_id=job.operation_id, settings=job.settings_json
                )  # type: ignore[call-arg]
            else:
                result = await callback_provider.result_from_callback(payload, deadline=deadline)
            if isinstance(result, ProviderData):  # as the runner: a step's output must be media, but a task's last
                if job is not None and is_task(job.pipeline) and job.step_index + 1 >= plan(job).count:
                    return await self._complete_data(job_id, hash_, result)
                raise ProviderError("result_not_media", "the operation returned no image or video", retryable=False)
            # The same image boundary as the worker's: identified by its bytes, decoded, in the slot's format.
            result = await accepted_result(result, job.settings_json if job else {}, self.settings.max_image_pixels)
            if job is not None:
                fence = Fence(job.attempt, hash_)
                after = await self.steps.succeeded(job, result, fence, self._move, self.settings.result_ttl_sec)
                if isinstance(after, bool):
                    return Delivery(str(job_id), "moved" if after else "duplicate")
                result = after  # the last step's image, through the finishing stage
        except ProviderError as err:
            return await self._failed(job_id, hash_, job, err)
        return await self._complete(job_id, hash_, result)

    async def _move(self, statement: Any, params: dict[str, Any]) -> bool:
        # One try: an error answers the provider with an error, and it delivers again.
        return await self.queue.sql.one(statement, params) is not None

    async def _complete(self, job_id: uuid.UUID, hash_: str, result: Any) -> Delivery:
        ref = await self.media.write_bytes("result", result.image.data, result.image.mime)
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.result_ttl_sec)
        further = OUTPUTS_BY_CALLBACK, {"id": job_id, "hash": hash_}, result, expires  # a task's (tasks.outputs)
        if has_further(result) and not await record_further(self.queue.sql, self.media, *further):
            await self.media.drop_bytes(ref)
            return Delivery(str(job_id), "duplicate")
        if not await self.callbacks.complete(job_id, hash_, ref, expires, result.cost):
            await self.media.drop_bytes(ref)  # a concurrent duplicate won: keep exactly one result
            return Delivery(str(job_id), "duplicate")
        self._ended(job_id)
        return Delivery(str(job_id), "completed")

    async def _failed(self, job_id: uuid.UUID, hash_: str, job: JobRecord | None, err: ProviderError) -> Delivery:
        """The same retry decision as the worker's: a failure another attempt may cure, with time for it, sends the
        job back to the queue (`requeued`); otherwise the job fails (`failed`)."""
        decision = None
        if job is not None:
            typical_sec = self.catalog.typical_sec(job.provider_id)
            decision = self.retry.decide(job, err, typical_sec=typical_sec, now=datetime.now(UTC))
        attempt = job.attempt if job is not None else 0
        retry_in = decision.retry_in if decision is not None else None
        message = decision.message if decision is not None else err.message
        if job is not None and retry_in is None:
            # Failed for good here: the step's next alternative, or past an optional step, before failing the job.
            try:
                after = await self.steps.failed_for_good(job, err, message, Fence(job.attempt, hash_), self._move)
            except ProviderError as finishing:  # a skipped last step, and the finishing stage failed
                err, message, after = finishing, finishing.message, None
            if isinstance(after, bool):
                return Delivery(str(job_id), "moved" if after else "duplicate")
            if after is not None:
                return await self._complete(job_id, hash_, after)
        recorded = await self.callbacks.fail(
            job_id, hash_, attempt, err.code, message, retryable=err.retryable, details=err.details(), retry_in=retry_in
        )
        if not recorded:
            return Delivery(str(job_id), "duplicate")
        if retry_in is not None:
            return Delivery(str(job_id), "requeued")
        self._ended(job_id)
        return Delivery(str(job_id), "failed")

    async def _complete_data(self, job_id: uuid.UUID, hash_: str, result: ProviderData) -> Delivery:
        """A task's last step made a record (a fine-tune): the task succeeds with it as its `result_data`."""
        params = {"id": job_id, "hash": hash_, "data": Jsonb(result.data), "cost": result.cost}
        if await self.queue.sql.one(COMPLETE_DATA_BY_CALLBACK, params) is None:
            return Delivery(str(job_id), "duplicate")
        self._ended(job_id)
        return Delivery(str(job_id), "completed")

    def _ended(self, job_id: Any) -> None:
        if self.hub is not None:
            self.hub.job_ended(job_id)
