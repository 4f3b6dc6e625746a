"""The booth-facing use case: validate a posted photo, run it through the queue, answer within T_sync.

HTTP-agnostic: the ingest function parses the request and maps `IngestOutcome` to a response.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from boothbridge.catalog import Catalog
from boothbridge.db.raw import (
    DatabaseBusy,
    DatabaseUnavailable,
    RawDb,
    db_deadline,
    is_connection_trouble,
    trouble_reason,
)
from boothbridge.errors import AppError
from boothbridge.ingest.admission import (
    answer_due,
    require_limits,
    slot_for_run,
    slot_limits,
    upload_cap,
)
from boothbridge.ingest.choice import choose, pipeline_for
from boothbridge.ingest.intake import JobIntake
from boothbridge.ingest.model import IngestOutcome, PhotoSink, SlotForIngest, UploadedForm
from boothbridge.ingest.outcome import (
    UNDECODABLE_CODE,
    error_answer,
    failure_answer,
    failure_point,
    falls_back,
    job_error,
    log_retry_sec,
    result_gone,
    success_answer,
)
from boothbridge.ingest.processing_log import record_request
from boothbridge.ingest.slot_read import check_password, load_slot
from boothbridge.ingest.upload import PhotoUpload
from boothbridge.jobs.dispatch import JobDispatcher
from boothbridge.jobs.model import JobRecord, JobWithResult
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.waiting import wait_subscribed
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.platform.logs import bind_job
from boothbridge.platform.memory import IdleTrim
from boothbridge.providers.base import Provider
from boothbridge.settings import Settings
from boothbridge.settings_store import SettingsStore
from boothbridge.slots.rules import SlotUpdate

log = logging.getLogger(__name__)

# Reads the form: the photo's cap in bytes, and the sink its bytes go to as they arrive (a reader that reads the
# photo into memory instead, an operator's test run, returns it as the form's `file`).
FormReader = Callable[[int, PhotoSink], Awaitable[UploadedForm]]


class IngestService:
    """The booth's request, end to end. Built once per process by `boothbridge.bootstrap` with the parts it uses."""

    def __init__(
        self,
        *,
        settings: Settings,
        settings_store: SettingsStore,
        pool: RawDb,
        catalog: Catalog,
        providers: Mapping[str, Provider],
        ingest_hmac_key: bytes,
        queue: JobQueue,
        media: MediaService,
        dispatcher: JobDispatcher,
        hub: NotificationHub | None,
    ) -> None:
        self.settings = settings
        self.settings_store = settings_store
        self.pool = pool  # the hot path's psycopg pool: the slot read and the processing-log row
        self.catalog = catalog
        self.providers = providers  # the adapters this process built (a slot of another provider is refused)
        self.ingest_hmac_key = ingest_hmac_key
        self.queue = queue
        self.media = media
        self.dispatcher = dispatcher
        self.hub = hub  # required to wait for a job (a process that serves booths listens)
        self.t_sync = settings.t_sync_response
        self.intake = JobIntake(settings=settings, catalog=catalog, queue=queue, dispatcher=dispatcher)
        self.idle_trim = IdleTrim()  # after a burst of photos, their freed memory goes back (platform/memory.py)

    async def process(
        self,
        slot_id: str,
        read_form: FormReader,
        started: float,
        *,
        is_test: bool = False,
        config: SlotUpdate | None = None,
        variant: str | None = None,
    ) -> IngestOutcome:
        """Handle one booth request; always writes one processing-log row.

        `variant`: the request's `variant` query parameter (None when absent); with the slot's variant field it
        chooses the variant the pipeline runs (`ingest.choice`).

        `is_test` is an operator's test run of the slot (`POST /api/slots/{id}/test`): the caller has already
        authenticated the operator and checked that the slot is theirs, which stands in for the ingest password.
        A test run is never attached to an earlier job of the same photo nor de-duplicated against booth jobs,
        never falls back to the original photo (the operator is there to see the provider's failure), and its job
        and log row are marked `is_test`, so booth statistics never count it. `config` (test runs only) is an
        unsaved configuration from the slot page, already validated like a save, run in place of the stored one.
        """
        with self.idle_trim.busy():
            return await self._process(slot_id, read_form, started, is_test=is_test, config=config, variant=variant)

    async def _process(
        self,
        slot_id: str,
        read_form: FormReader,
        started: float,
        *,
        is_test: bool,
        config: SlotUpdate | None,
        variant: str | None,
    ) -> IngestOutcome:
        # The operator may have changed T_SYNC_RESPONSE on the settings page (re-read at most every few seconds;
        # while the database does not answer, the values last read stand).
        try:
            self.t_sync = (await self.settings_store.refresh()).t_sync_response
        except Exception as exc:
            if not is_connection_trouble(exc):
                raise
            self.t_sync = self.settings_store.values.t_sync_response
        slot: SlotForIngest | None = None
        form: UploadedForm | None = None
        upload: PhotoUpload | None = None
        source: MediaRef | None = None
        job: JobRecord | None = None
        chosen: dict[str, Any] | None = None
        # Every retried statement of this request gives up when the booth's answer is due.
        with db_deadline(answer_due(started, self.t_sync)):
            try:
                slot = await load_slot(self.pool, slot_id)
                slot = slot_for_run(slot, is_test=is_test, config=config)
                limits = slot_limits(self.catalog, self.providers, slot)
                cap = upload_cap(self.settings.max_upload_bytes, limits)
                upload = PhotoUpload(
                    self.media,
                    allowed_mime=limits.allowed_mime if limits is not None else None,
                    max_bytes=cap,
                    max_pixels=self.settings.max_image_pixels,
                    check_password=None if is_test else self._password_check(slot),
                )
                form = await read_form(cap, upload)
                if form.file is not None:
                    await upload.feed(form.file)
                if not is_test:
                    check_password(self.ingest_hmac_key, slot, form.fields)
                require_limits(limits)
                # The guest's choice, and the booth's fields in prompts: the job's whole pipeline, fixed now.
                choice = choose(slot.variants, slot.variant_field, variant, form.fields)
                if slot.variants or slot.variant_field or variant:
                    chosen = choice.record()
                pipeline = pipeline_for(
                    slot, choice, form.fields, max_attempts=self.settings.max_attempts, catalog=self.catalog
                )
                photo = await upload.stored()
                assert self.hub is not None, "ingest needs the LISTEN hub"
                new_id = uuid.uuid4()
                # Subscribed before the job exists, so its end cannot be missed and needs no first read.
                with self.hub.subscribe(new_id) as woken:
                    job, source = await self.intake.job_for(
                        slot,
                        form,
                        photo,
                        upload,
                        new_id,
                        started,
                        self.t_sync,
                        pipeline=pipeline,
                        variant=chosen,
                        is_test=is_test,
                    )
                    bind_job(job.id)  # every later line of this request names its job
                    if job.id == new_id:
                        outcome = await self._await_result(slot, job, source, started, woken, fresh=True)
                if job.id != new_id:
                    with self.hub.subscribe(job.id) as woken:
                        outcome = await self._await_result(slot, job, None, started, woken, fresh=False)
            except AppError as err:
                outcome = error_answer(err)
                if form is None and upload is not None:  # refused mid-body: what was read of the form is logged
                    form = upload.form_so_far(err)
            except Exception as exc:
                # A statement that is not retried (SQLAlchemy's reads of media) met a database that blinked: 503 with
                # Retry-After, never a 500. Nothing was stored half: a photo stored before its job row was deleted.
                if not is_connection_trouble(exc):
                    raise
                log.warning("ingest on %s: the database is not reachable (%s)", slot_id, type(exc).__name__)
                unavailable = DatabaseUnavailable(trouble_reason(exc))
                outcome = error_answer(unavailable)
            finally:
                # A photo that did not become a job's (refused, attached to another job, or the request failed) is
                # removed now, whatever was stored of it; a job's photo is left to the job.
                if upload is not None:
                    await upload.drop()
        if outcome.job_id is None and job is not None:
            outcome.job_id = job.id
        outcome.variant = chosen
        elapsed_ms = int((time.monotonic() - started) * 1000)
        outcome.processing_ms = elapsed_ms
        outcome.headers["X-Processing-Ms"] = str(elapsed_ms)
        # The photo whose expiry this request sets: the one it stored, or the one of the job it attached to (a
        # re-post keeps the photo alive while its job may still run).
        photo_id = source.id if source is not None else (job.source_media_id if job is not None else None)
        await self._finish(slot_id, slot, form, outcome, elapsed_ms, photo_id, is_test)
        if photo_id is not None and outcome.error is not None and outcome.error.code == UNDECODABLE_CODE:
            await self._discard(photo_id)
        return outcome

    # ---- steps ---------------------------------------------------------------------------------------

    def _password_check(self, slot: SlotForIngest) -> Callable[[Mapping[str, str]], None]:
        return lambda fields: check_password(self.ingest_hmac_key, slot, fields)

    async def _await_result(
        self,
        slot: SlotForIngest,
        job: JobRecord,
        source: MediaRef | None,
        started: float,
        woken: asyncio.Event,
        *,
        fresh: bool,
    ) -> IngestOutcome:
        """Wait for `job` and answer. Nothing of the photo is held meanwhile: a fallback answer reads it back
        (`source`: the photo this request stored, read without the database; else the job's)."""
        assert self.hub is not None
        if not job.is_terminal:
            deadline = answer_due(started, self.t_sync)
            try:
                job = await wait_subscribed(
                    self.queue,
                    self.hub,
                    job.id,
                    woken,
                    deadline,
                    self.settings.fallback_poll_sec,
                    skip_first_read=fresh,
                )
            except (DatabaseUnavailable, DatabaseBusy) as unavailable:
                # Its answer is due and the database still does not answer (or the pool stayed busy): the job is
                # kept (a re-post attaches to it or gets its result), the booth is told to try again.
                unavailable.details["job_id"] = str(job.id)
                return await self._failure(slot, job, source, unavailable)
        err = job_error(job, self.t_sync)
        if err is None:
            assert job.result_media_id is not None, "job_error: a success without a result is a failure"
            try:
                # The read that found the job ended may also have read its result's live media row.
                prefetched = isinstance(job, JobWithResult)
                row = job.result if isinstance(job, JobWithResult) else None
                data, ref = await self.media.read_via(job.result_media_id, row, row_was_read=prefetched)
            except (MediaNotFound, MediaExpired):
                return await self._failure(slot, job, source, result_gone(job))
            # A re-post answered by an existing job (not `fresh`) started no paid call: no cost of its own.
            return success_answer(job, data, ref.mime, fresh=fresh)
        return await self._failure(slot, job, source, err)

    async def _failure(
        self, slot: SlotForIngest, job: JobRecord, source: MediaRef | None, err: AppError
    ) -> IngestOutcome:
        """`failure_answer`, with the booth's own photo read back from storage when the answer is that photo. One
        that cannot be read (gone, or the database down for an attached re-post) leaves the error as the answer.
        The outcome names where `job` stopped when it failed or was cancelled (`failure_point`)."""
        photo: bytes | None = None
        mime = source.mime if source is not None else "application/octet-stream"
        if falls_back(slot.failure_policy, err):
            try:
                if source is not None:
                    photo = await self.media.read_described(source)
                else:
                    photo, ref = await self.media.read(job.source_media_id)
                    mime = ref.mime
            except (MediaNotFound, MediaExpired):
                log.warning("job %s: the booth's photo is gone; answering the error instead", job.id)
            except Exception as exc:
                if not is_connection_trouble(exc):
                    raise
                log.warning("job %s: the booth's photo cannot be read (%s)", job.id, type(exc).__name__)
        outcome = failure_answer(slot.failure_policy, job.id, photo, mime, err)
        outcome.failed_step, outcome.failed_alternative = failure_point(job)
        return outcome

    async def _discard(self, photo_id: uuid.UUID) -> None:
        """The worker could not decode the photo: nothing of it is kept (else it goes with its expiry)."""
        try:
            await self.media.discard(photo_id)
        except Exception:
            log.warning("the undecodable photo %s could not be deleted now; it expires as usual", photo_id)

    async def _finish(
        self,
        slot_id: str,
        slot: SlotForIngest | None,
        form: UploadedForm | None,
        outcome: IngestOutcome,
        elapsed_ms: int,
        source_id: uuid.UUID | None,
        is_test: bool,
    ) -> None:
        source_expires = datetime.now(UTC) + timedelta(seconds=self.settings.source_ttl_sec)
        # The answer waits for this row: a database that blinked gets a short retry, one that is known to be
        # down (this very answer says so) gets a single try.
        with db_deadline(time.monotonic() + log_retry_sec(outcome)):
            await record_request(
                self.pool,
                slot_id,
                slot.id if slot else None,
                form,
                outcome,
                elapsed_ms,
                source_id,
                source_expires,
                is_test,
                source_ttl_sec=self.settings.source_ttl_sec,
            )
