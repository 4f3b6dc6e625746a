"""Running one claimed job attempt: inputs from media storage, the provider call under a lease, the outcome."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from psycopg.types.json import Jsonb

from boothbridge.catalog import Catalog
from boothbridge.jobs import step_statements as step_sql
from boothbridge.jobs.backoff import can_start
from boothbridge.jobs.callbacks import CallbackQueue, new_callback_token
from boothbridge.jobs.inputs import InputPreparer, Spool
from boothbridge.jobs.leased_call import HandedBack, LeasedCalls, LeaseLost
from boothbridge.jobs.model import ClaimedJob, JobRecord, JobWithResult
from boothbridge.jobs.queue import JobQueue, unreachable
from boothbridge.jobs.result_image import accepted_result
from boothbridge.jobs.retry import RetryPolicy
from boothbridge.jobs.status import JobStatus
from boothbridge.jobs.steps import Fence, PipelineSteps, plan
from boothbridge.media.links import PublicLinks
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.platform.logs import bound_job
from boothbridge.providers.base import (
    ImageSource,
    Provider,
    ProviderData,
    ProviderError,
    ProviderParked,
    ProviderRequest,
    ProviderResult,
)
from boothbridge.settings_store import SettingsStore
from boothbridge.tasks.outputs import has_further, is_task, record_further

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptOutcome:
    """What became of an attempt: succeeded / queued (retry in `retry_in` s) / failed / stale (fenced out)."""

    status: str
    retry_in: float | None = None


class JobEnds(Protocol):
    """Where this process's waiters learn that a job ended here (the `NotificationHub`).

    The runner holds the job's NOTIFY back while its completion statement runs (`ending_here`) and hands the
    waiters the job as that statement returned it (`job_ended` with `final`), so they need no read of their own;
    a failure wakes them with `job_ended(job_id)` to read the row."""

    def ending_here(self, job_id: uuid.UUID) -> AbstractContextManager[None]: ...

    def job_ended(self, job_id: uuid.UUID, final: JobWithResult | None = None) -> None: ...


class _LeaseLost(Exception):
    """The database answered a heartbeat: this attempt no longer holds the job (taken over, cancelled, ended)."""


class _HandedBack(Exception):
    """The worker is stopping: the attempt's provider call was cancelled (or never started) to hand the job back."""


# While the database cannot be reached, a heartbeat is tried again this often (at most every HEARTBEAT_SEC): the
# first one that gets through re-asserts the lease.
HEARTBEAT_RETRY_SEC = 1.0


async def _no_links(image: ImageSource) -> str:
    raise ProviderError("public_links_unavailable", "this deployment cannot publish images", retryable=False)


def _decodes_input(provider: object) -> bool:
    """The provider decodes its input images itself, as `codec.decode` does (upright, sRGB, 8-bit), and never sends
    them on (the `local` one): it is handed them as stored, and a corrupt photo shows in its own decode."""
    return bool(getattr(provider, "decodes_input", False))


class JobRunner:
    """Runs claimed jobs. Shared by the local worker loop and the Lambda worker handler."""

    def __init__(
        self,
        queue: JobQueue,
        media: MediaService,
        providers: Mapping[str, Provider],
        catalog: Catalog,
        *,
        callbacks: CallbackQueue,
        retry: RetryPolicy,
        heartbeat_sec: float,
        result_ttl_sec: int,
        links: PublicLinks | None = None,
        max_image_pixels: int = 160_000_000,
        settings_store: SettingsStore | None = None,
        ends: JobEnds | None = None,
        delivery_allows_private: bool = True,
    ) -> None:
        self.queue = queue
        self.delivery_allows_private = delivery_allows_private  # TASK_FETCH_ALLOW_PRIVATE, for writeUrls
        self.max_image_pixels = max_image_pixels
        # Moving a job between its pipeline's steps, and the finishing stage after the last.
        self.steps = PipelineSteps(media, catalog)
        self.inputs = InputPreparer(media, max_image_pixels)
        self.callbacks = callbacks
        self.links = links
        self.media = media
        self.providers = providers
        self.catalog = catalog
        self.retry = retry
        self.result_ttl_sec = result_ttl_sec
        # Told when a job ends in this process (the hub, in a process that listens).
        self.ends = ends
        # Operator overrides (API keys, result TTL), refreshed before each attempt.
        self.settings_store = settings_store
        # The provider calls under their leases, and a stopping worker's hand-back of them.
        self.calls = LeasedCalls(queue, heartbeat_sec)
        # Deliveries of tasks that succeeded here, started at once (`_kick_delivery`), and deletions of results a
        # cancelled attempt did not record (`_drop_unless_recorded`); held until they end.
        self._kicks: set[asyncio.Future[Any]] = set()

    def hand_back(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        """See `LeasedCalls.hand_back`."""
        self.calls.hand_back(tasks)

    async def run(self, job: JobRecord) -> AttemptOutcome:
        """One attempt of `job`, to its outcome; every line logged meanwhile names the job and the attempt. The
        spool files of its inputs are removed when it ends, whatever the outcome."""
        spool = self.inputs.spool()
        try:
            with bound_job(job.id, attempt=job.attempt):
                return await self._attempt(job, spool)
        finally:
            spool.remove()

    async def _attempt(self, job: JobRecord, spool: Spool) -> AttemptOutcome:
        try:
            request, provider = await self._prepare(job, spool)
        except ProviderError as err:
            return await self._failed(job, err)
        except Exception as exc:
            # Nothing was paid for yet. A database that blinked (the first query on a pooled connection a restart
            # closed) gives the job back at once without spending an attempt; anything else is our fault, and the
            # attempt fails (retryably) instead of leaving the job to wait out its lease.
            if unreachable(exc):
                log.warning(
                    "job %s attempt %s: the database blinked while preparing; handing it back", job.id, job.attempt
                )
                return await self._hand_back(job)
            log.exception("preparing job %s attempt %s failed", job.id, job.attempt)
            return await self._failed(
                job, ProviderError("worker_internal_error", "the worker could not prepare the attempt", retryable=True)
            )
        # The request names the photo (and templates) as the provider receives them, in storage or a spool file: a
        # provider reads the bytes only while it needs them. It is let go as soon as the call returns (a parked job
        # keeps only what it needs to wait for the callback).
        park_sec = request.timeout_sec * 2
        try:
            result = await self.calls.call(job, provider, request)
        except LeaseLost:
            log.warning("job %s attempt %s lost its lease; result discarded", job.id, job.attempt)
            return AttemptOutcome("stale")
        except HandedBack:
            return await self._hand_back(job)
        except ProviderError as err:
            return await self._failed(job, err)
        except TimeoutError:
            return await self._failed(
                job, ProviderError("provider_timeout", "the provider did not answer in time", retryable=True)
            )
        except json.JSONDecodeError as exc:
            # An adapter parses only what the provider sent: an answer that is not the JSON it documents (an HTML
            # error page with status 200, a cut body) is the provider's fault, retried like one, not our crash.
            return await self._failed(
                job, ProviderError("bad_answer", f"the provider's answer is not valid JSON ({exc.msg})", retryable=True)
            )
        except Exception:
            log.exception("provider %s crashed on job %s", job.provider_id, job.id)
            return await self._failed(
                job, ProviderError("provider_internal_error", "the provider adapter failed", retryable=True)
            )
        finally:
            del request
        if isinstance(result, ProviderParked):
            # The provider will call our webhook; the wait is bounded by the provider's own timeout.
            if await self.callbacks.park(job.id, job.attempt, result.provider_ref, park_sec):
                return AttemptOutcome(JobStatus.WAITING_PROVIDER)
            return AttemptOutcome("stale")  # the callback already finished it, or the attempt was fenced out
        if isinstance(result, ProviderData):
            # A record, not media (a fine-tune): only a task's last step may end so; elsewhere a step's output must
            # be an image or a video.
            if not is_task(job.pipeline) or job.step_index + 1 < plan(job).count:
                return await self._failed(
                    job, ProviderError("result_not_media", "the operation returned no image or video", retryable=False)
                )
            return await self._completed_data(job, result)
        try:
            result = await accepted_result(result, job.settings_json, self.max_image_pixels)
        except ProviderError as err:
            return await self._failed(job, err)
        return await self._succeeded(job, result)

    async def _prepare(self, job: JobRecord, spool: Spool) -> tuple[ProviderRequest, Provider]:
        if self.settings_store is not None:
            values = await self.settings_store.refresh()  # applies changed API keys to the adapters
            self.result_ttl_sec = values.result_ttl_sec
        provider = self.providers.get(job.provider_id)
        operation = self.catalog.operation(job.operation_id)
        entry = self.catalog.provider(job.provider_id)
        if provider is None or operation is None or entry is None:
            raise ProviderError(
                "provider_unavailable", f"provider {job.provider_id!r} is not available", retryable=False
            )
        seconds_left = (job.last_useful_end - datetime.now(UTC)).total_seconds()
        useful_until = time.monotonic() + seconds_left  # the same moment on the clock providers wait by
        # Work an earlier attempt submitted (a resumable provider polls it instead of paying again; no time check).
        resume_ref = await self.callbacks.resume_ref(job.id, job.provider_id)
        if resume_ref is None and not can_start(seconds_left, entry.ingest.typical_sec):
            # Queued too long, or taken over too late: a call now would end after the booth stopped waiting.
            raise ProviderError(
                "no_time_left", "no time was left for an attempt before the booth's answer was due", retryable=False
            )
        source = await self._source(job, provider, spool)
        media: dict[str, ImageSource] = {}
        for field in operation.media_fields():
            media_id = job.settings_json.get(field)
            if not media_id:
                continue
            missing = ("template_missing", f"the slot's image {field} is missing or expired")
            try:
                ref = await self.media.describe(uuid.UUID(str(media_id)))
            except (ValueError, MediaNotFound, MediaExpired) as exc:
                raise ProviderError(*missing, retryable=False) from exc
            media[field] = await self.inputs.prepare(
                ref, f"slot image {field}", spool, as_stored=_decodes_input(provider), gone=missing
            )
        webhook_url = None
        if self.links is not None and self.links.webhooks and hasattr(provider, "result_from_callback"):
            token, hash_ = new_callback_token(job.id)
            # Armed before the call: a fast provider may call back before this attempt returns.
            if await self.callbacks.arm(job.id, job.attempt, hash_):
                webhook_url = self.links.webhook_url(job.provider_id, token)
        request = ProviderRequest(
            job_id=str(job.id),
            attempt=job.attempt,
            operation_id=job.operation_id,
            settings=job.settings_json,
            source=source,
            media=media,
            timeout_sec=entry.ingest.timeout_sec,
            public_url=self.links.linker(job.id) if self.links is not None else _no_links,
            webhook_url=webhook_url,
            # A provider that waits before its paid call (a client-side quota window) must not start it later.
            start_by=max(useful_until - entry.ingest.typical_sec, time.monotonic()),
            resume_ref=resume_ref,
            submitted=self.callbacks.recorder(job, provider),  # the job keeps the id of work the provider accepted
        )
        return request, provider

    async def _source(self, job: JobRecord, provider: Provider, spool: Spool) -> ImageSource | None:
        """The step's input image as the provider receives it; None for a task that has none (a prompt-only
        operation's first step: no source, no previous output)."""
        media_id: uuid.UUID | None = job.input_media_id or job.source_media_id
        if media_id is None:
            return None
        gone = ("source_expired", "the source photo is no longer stored")
        if job.input_media_id is not None:  # a later step: its input is the previous step's output
            gone = ("input_expired", "the previous step's image is no longer stored")
        # The claim read the source's live media row along with the job. None (gone or expired, as far as the claim
        # saw) is asked again by id: a job committed while a claim ran can be claimed with its photo's row not yet
        # visible to the claim's join (seen under a burst of ingests), and must not fail for that.
        row = job.source if isinstance(job, ClaimedJob) and job.input_media_id is None else None
        if row is None:
            try:
                row = await self.media.describe(media_id)
            except (MediaNotFound, MediaExpired) as exc:
                raise ProviderError(*gone, retryable=False) from exc
        # Ingest checked only the photo's type, header and ending: its data is decoded here, or by a provider that
        # decodes what it gets (`decodes_input`, the local one, which is handed the photo as stored and normalises
        # it as it decodes), and a corrupt photo fails the job for good as `image_undecodable` (the booth: 422).
        decodes = _decodes_input(provider)
        return await self.inputs.prepare(row, "photo", spool, verify=not decodes, as_stored=decodes, gone=gone)

    async def _hand_back(self, job: JobRecord) -> AttemptOutcome:
        """Give the job back without spending the attempt (this worker is stopping, or the database blinked before
        the provider was called)."""
        if await self.queue.hand_back(job.id, job.attempt):
            log.info("job %s attempt %s handed back; no attempt spent", job.id, job.attempt)
            return AttemptOutcome("handed_back")
        return AttemptOutcome("stale")

    async def _succeeded(self, job: JobRecord, result: ProviderResult) -> AttemptOutcome:
        """The call's image: the job moves to its next step, or (the last step) finishing makes the result."""
        # The detail's phase, told while the image is stored (not waited for: it only informs). A one-step job
        # without finishing stores its result and completes in one go: a phase for those milliseconds would cost
        # the booth's hot path one more statement.
        phase = asyncio.ensure_future(self._uploading(job)) if self.steps.has_stages(job) else None
        try:
            after = await self.steps.succeeded(job, result, Fence(job.attempt), self.queue.move, self.result_ttl_sec)
        except ProviderError as err:  # the finishing stage could not make the final image
            return await self._failed(job, err)
        finally:
            if phase is not None:
                await phase
        if after is True:
            return AttemptOutcome("moved", retry_in=0.0)  # queued for the next step's provider at once
        if after is False:
            log.warning("job %s attempt %s finished its step late; output discarded", job.id, job.attempt)
            return AttemptOutcome("stale")
        return await self._completed(job, after)

    async def _uploading(self, job: JobRecord) -> None:
        try:
            await self.queue.mark_uploading(job.id, job.attempt)
        except Exception:  # the phase is information only: the outcome that follows decides
            log.debug("job %s: recording the uploading phase failed", job.id, exc_info=True)

    async def _completed(self, job: JobRecord, result: ProviderResult) -> AttemptOutcome:
        """Store the final image (or video) and complete the job with it; a task's further outputs and result
        JSON are recorded first (`tasks.outputs`)."""
        ref = await self.media.write_bytes("result", result.image.data, result.image.mime)
        expires = datetime.now(UTC) + timedelta(seconds=self.result_ttl_sec)
        try:
            if has_further(result):
                fence = {"id": job.id, "attempt": job.attempt}
                if not await record_further(self.queue.sql, self.media, step_sql.OUTPUTS, fence, result, expires):
                    await self.media.store.delete(ref.storage_key)
                    return AttemptOutcome("stale")
        except BaseException:
            await self.media.store.delete(ref.storage_key)
            raise
        # The completion runs to its end even when this attempt is cancelled meanwhile (a stopping worker): once its
        # statement is sent it may commit (a grouped one always runs on), and then the job's result is this object.
        completion = asyncio.ensure_future(self._complete(job, ref, expires, result.cost))
        try:
            done = await asyncio.shield(completion)
        except asyncio.CancelledError:
            completion.add_done_callback(lambda ended: self._drop_unless_recorded(ended, ref))
            raise
        except BaseException:
            await self.media.store.delete(ref.storage_key)
            raise
        if done is None:
            # A newer attempt owns the job (or it was cancelled): this late result must not overwrite it.
            await self.media.store.delete(ref.storage_key)
            log.warning("job %s attempt %s finished late; result discarded", job.id, job.attempt)
            return AttemptOutcome("stale")
        if is_task(job.pipeline):
            self._kick_delivery(job.id)
        return AttemptOutcome(JobStatus.SUCCEEDED)

    def _drop_unless_recorded(self, completion: asyncio.Future[JobWithResult | None], ref: MediaRef) -> None:
        """After a cancelled attempt's completion ended: its result object is deleted when the completion is known
        not to have recorded it (refused by the fence); kept when it did, or when that cannot be told (an error: a
        stray object only costs storage, a deleted one could cost the job its result)."""
        if completion.cancelled() or completion.exception() is not None or completion.result() is not None:
            return
        drop = asyncio.ensure_future(self.media.store.delete(ref.storage_key))
        self._kicks.add(drop)
        drop.add_done_callback(self._kicks.discard)

    def _kick_delivery(self, job_id: uuid.UUID) -> None:
        """A task's output goes to its writeUrl now, not at the next delivery pass (`tasks.delivery`; a task with
        no writeUrl finds nothing due). Not awaited: the attempt has ended; a pass that never runs (the process
        stops) leaves the delivery to the next pass of the loop or the scheduled cleanup."""
        from boothbridge.tasks.delivery import TaskDeliveries

        kick = asyncio.ensure_future(
            TaskDeliveries(self.queue.sql, self.media, allow_private=self.delivery_allows_private).run_due(job_id)
        )
        self._kicks.add(kick)
        kick.add_done_callback(self._kicked)

    def _kicked(self, kick: asyncio.Future[int]) -> None:
        self._kicks.discard(kick)
        if not kick.cancelled() and kick.exception() is not None:
            log.warning("delivering a task's output failed; the next pass tries again", exc_info=kick.exception())

    async def _completed_data(self, job: JobRecord, result: ProviderData) -> AttemptOutcome:
        """A task whose last step made a record (`ProviderData`): it succeeds with that as its `result_data`."""
        params = {"id": job.id, "attempt": job.attempt, "data": Jsonb(result.data), "cost": result.cost}
        if await self.queue.sql.one(step_sql.COMPLETE_DATA, params) is None:
            log.warning("job %s attempt %s finished late; record discarded", job.id, job.attempt)
            return AttemptOutcome("stale")
        self._ended(job.id)
        return AttemptOutcome(JobStatus.SUCCEEDED)

    async def _complete(self, job: JobRecord, ref: MediaRef, expires: datetime, cost: float) -> JobWithResult | None:
        """`complete`, with the job's NOTIFY held back meanwhile and the completed job handed to this
        process's waiters as the statement returned it (see `JobEnds`)."""
        if self.ends is None:
            return await self.queue.complete(job.id, job.attempt, ref, expires, cost)
        with self.ends.ending_here(job.id):
            done = await self.queue.complete(job.id, job.attempt, ref, expires, cost)
            if done is not None:
                self.ends.job_ended(job.id, done)
        return done

    async def _failed(self, job: JobRecord, err: ProviderError) -> AttemptOutcome:
        typical_sec = self.catalog.typical_sec(job.provider_id)
        decision = self.retry.decide(job, err, typical_sec=typical_sec, now=datetime.now(UTC))
        retry_in, message = decision.retry_in, decision.message
        if retry_in is None:
            # Failed for good here: the step's next alternative, or past an optional step, before failing the job.
            try:
                after = await self.steps.failed_for_good(job, err, message, Fence(job.attempt), self.queue.move)
            except ProviderError as finishing:  # a skipped last step, and the finishing stage failed
                err, message, after = finishing, finishing.message, None
            if after is True:
                return AttemptOutcome("moved", retry_in=0.0)
            if after is False:
                return AttemptOutcome("stale")
            if after is not None:
                return await self._completed(job, after)
        status = await self.queue.fail_attempt(
            job.id, job.attempt, err.code, message, err.retryable, retry_in, err.details()
        )
        if status is None:
            return AttemptOutcome("stale")
        log.info("job %s attempt %s failed (%s); now %s", job.id, job.attempt, err.code, status)
        if status == JobStatus.FAILED:
            self._ended(job.id)
        return AttemptOutcome(status, retry_in)

    def _ended(self, job_id: uuid.UUID) -> None:
        if self.ends is not None:
            self.ends.job_ended(job_id)
