"""The booth-facing use case: validate a posted photo, run it through the queue, answer within T_sync.

HTTP-agnostic: the ingest function parses the request and maps `IngestOutcome` to a response.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from boothbridge.accounts.ingest_password import INGEST_PASSWORD_KEY, check_ingest_password
from boothbridge.catalog import Catalog, IngestLimits
from boothbridge.db.raw import (
    DatabaseUnavailable,
    RawDb,
    db_deadline,
    is_connection_trouble,
    retry_safe,
    trouble_reason,
)
from boothbridge.errors import AppError
from boothbridge.images.upload import inspect_image
from boothbridge.ingest.admission import (
    check_backlog,
    check_slot_id,
    fallback_at,
    require_limits,
    require_photo,
    slot_for_run,
    slot_limits,
    upload_cap,
)
from boothbridge.ingest.model import IngestOutcome, SlotForIngest, UploadedForm, public_fields
from boothbridge.ingest.outcome import (
    error_answer,
    failure_answer,
    job_error,
    log_retry_sec,
    result_gone,
    success_answer,
)
from boothbridge.ingest.processing_log import record_request
from boothbridge.jobs.dispatch import JobDispatcher
from boothbridge.jobs.model import JobRecord, JobWithResult, NewJob
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.waiting import wait_subscribed
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.platform.logs import bind_job
from boothbridge.providers.base import Provider
from boothbridge.settings import Settings
from boothbridge.settings_store import SettingsStore
from boothbridge.slots.rules import SlotUpdate

log = logging.getLogger(__name__)

FormReader = Callable[[int], Awaitable[UploadedForm]]

# The slot as ingest needs it, and the ingest password's digest, in one read on every request (a changed slot or
# password applies at once). A read: retried on a fresh connection when the database blinks.
_SLOT = retry_safe("""
    SELECT s.id, s.provider_id, s.operation_id, s.settings_json, s.failure_policy,
           (SELECT value->>'digest' FROM app_settings WHERE key = %(pw_key)s) AS digest
    FROM slots s WHERE s.id = %(id)s
    """)


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

    async def process(
        self,
        slot_id: str,
        read_form: FormReader,
        started: float,
        *,
        is_test: bool = False,
        config: SlotUpdate | None = None,
    ) -> IngestOutcome:
        """Handle one booth request; always writes one processing-log row.

        `is_test` is an operator's test run of the slot (`POST /api/slots/{id}/test`): the caller has already
        authenticated the operator and checked that the slot is theirs, which stands in for the ingest password.
        A test run is never attached to an earlier job of the same photo nor de-duplicated against booth jobs,
        never falls back to the original photo (the operator is there to see the provider's failure), and its job
        and log row are marked `is_test`, so booth statistics never count it. `config` (test runs only) is an
        unsaved configuration from the slot page, already validated like a save, run in place of the stored one.
        """
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
        source_id: uuid.UUID | None = None
        job: JobRecord | None = None
        # Every retried statement of this request gives up when the booth's answer is due.
        with db_deadline(started + self.t_sync):
            try:
                slot = await self._load_slot(slot_id)
                slot = slot_for_run(slot, is_test=is_test, config=config)
                limits = slot_limits(self.catalog, self.providers, slot)
                form = await read_form(upload_cap(self.settings.max_upload_bytes, limits))
                if not is_test:
                    self._check_password(slot, form)
                photo, mime = await self._validated_photo(form, require_limits(limits))
                assert self.hub is not None, "ingest needs the LISTEN hub"
                new_id = uuid.uuid4()
                # Subscribed before the job exists, so its end cannot be missed and needs no first read.
                with self.hub.subscribe(new_id) as woken:
                    job, source_id = await self._job_for(slot, form, photo, mime, new_id, started, is_test=is_test)
                    bind_job(job.id)  # every later line of this request names its job
                    if job.id == new_id:
                        outcome = await self._await_result(slot, job, photo, mime, started, woken, fresh=True)
                if job.id != new_id:
                    with self.hub.subscribe(job.id) as woken:
                        outcome = await self._await_result(slot, job, photo, mime, started, woken, fresh=False)
            except AppError as err:
                outcome = error_answer(err)
            except Exception as exc:
                # A statement that is not retried (SQLAlchemy's reads of media) met a database that blinked: 503 with
                # Retry-After, never a 500. Nothing was stored half: a photo stored before its job row was deleted.
                if not is_connection_trouble(exc):
                    raise
                log.warning("ingest on %s: the database is not reachable (%s)", slot_id, type(exc).__name__)
                unavailable = DatabaseUnavailable(trouble_reason(exc))
                outcome = error_answer(unavailable)
        if outcome.job_id is None and job is not None:
            outcome.job_id = job.id
        elapsed_ms = int((time.monotonic() - started) * 1000)
        outcome.processing_ms = elapsed_ms
        outcome.headers["X-Processing-Ms"] = str(elapsed_ms)
        # The photo whose expiry this request sets: the one it stored, or the one of the job it attached to (a
        # re-post keeps the photo alive while its job may still run).
        photo_id = source_id if source_id is not None else (job.source_media_id if job is not None else None)
        await self._finish(slot_id, slot, form, outcome, elapsed_ms, photo_id, is_test)
        return outcome

    # ---- steps ---------------------------------------------------------------------------------------

    async def _load_slot(self, slot_id: str) -> SlotForIngest:
        check_slot_id(slot_id)
        row = await self.pool.one(_SLOT, {"id": slot_id, "pw_key": INGEST_PASSWORD_KEY})
        if row is None:
            raise AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id})
        return SlotForIngest(
            id=row["id"],
            provider_id=row["provider_id"],
            operation_id=row["operation_id"],
            settings_json=row["settings_json"] or {},
            failure_policy=row["failure_policy"],
            password_digest=row["digest"],
        )

    def _check_password(self, slot: SlotForIngest, form: UploadedForm) -> None:
        digest = slot.password_digest
        candidate = form.fields.get("password")
        if not digest or not check_ingest_password(self.ingest_hmac_key, digest, candidate):
            raise AppError(401, "invalid_password", "wrong or missing ingest password")

    async def _validated_photo(self, form: UploadedForm, limits: IngestLimits) -> tuple[bytes, str]:
        photo = require_photo(form, upload_cap(self.settings.max_upload_bytes, limits))
        info = await asyncio.to_thread(inspect_image, photo, limits.allowed_mime, self.settings.max_image_pixels)
        return photo, info.mime

    async def _job_for(
        self,
        slot: SlotForIngest,
        form: UploadedForm,
        photo: bytes,
        mime: str,
        new_id: uuid.UUID,
        started: float,
        *,
        is_test: bool = False,
    ) -> tuple[JobRecord, uuid.UUID | None]:
        """The job this photo belongs to: an existing one for the same bytes (retry-safe), or a new one.
        Returns the job and the id of the source media this request stored (None when it attached).
        A test run always gets a new job (the partial unique index leaves test jobs out, so it never conflicts)."""
        assert slot.provider_id and slot.operation_id
        sha = hashlib.sha256(photo).hexdigest()
        for _ in range(3):
            admission = await self.queue.admit(slot.id, sha, slot.provider_id, reuse=not is_test)
            if admission.reusable is not None:
                return admission.reusable, None
            now = datetime.now(UTC)
            deadline_at = now + timedelta(seconds=self.settings.job_deadline_sec)
            entry = self.catalog.provider(slot.provider_id)
            assert entry is not None, "slot_limits found the provider in the catalog"
            check_backlog(
                slot.provider_id,
                entry.ingest,
                admission.depth,
                backlog_factor=self.settings.backlog_factor,
                job_deadline_sec=self.settings.job_deadline_sec,
            )
            source = await self.media.write_bytes("source", photo, mime, sha256=sha)
            new = NewJob(
                id=new_id,
                slot_id=slot.id,
                provider_id=slot.provider_id,
                operation_id=slot.operation_id,
                settings_json=slot.settings_json,
                source_media_id=source.id,
                source_sha256=sha,
                max_attempts=self.settings.max_attempts,
                deadline_at=deadline_at,
                request_meta=public_fields(form),
                is_test=is_test,
                booth_fallback_at=fallback_at(slot.failure_policy, now, self.t_sync - (time.monotonic() - started)),
            )
            # The photo must outlive every attempt the job may start: a queue can hold it past the booth's wait
            # (a backlog up to the job's deadline). When the request ends, its expiry is set again (see
            # `ingest.processing_log`): SOURCE_TTL after the job's end, or this hold while the job can still run.
            hold_until = deadline_at + timedelta(seconds=self.settings.source_ttl_sec)
            try:
                job, created = await self.queue.enqueue(new, source, hold_until)
                if not created:
                    # No row: the same photo raced in on another request, or this very statement ran twice (the
                    # database blinked after inserting our job, and the retry met our own row).
                    mine = await self.queue.get(new_id)
                    if mine is not None:
                        job, created = mine, True
            except BaseException:
                await self.media.drop_bytes(source)
                raise
            if created:
                assert job is not None
                await self.dispatcher.dispatch(job.id)
                return job, source.id
            # The same photo raced in on another request: attach to that job, drop our copy.
            await self.media.drop_bytes(source)
        raise AppError(503, "busy", "the photo could not be queued, try again", headers={"Retry-After": "1"})

    async def _await_result(
        self,
        slot: SlotForIngest,
        job: JobRecord,
        photo: bytes,
        mime: str,
        started: float,
        woken: asyncio.Event,
        *,
        fresh: bool,
    ) -> IngestOutcome:
        assert self.hub is not None
        if not job.is_terminal:
            deadline = started + self.t_sync
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
            except DatabaseUnavailable as unavailable:
                # Its answer is due and the database still does not answer: the job is kept (a re-post once
                # the database is back attaches to it or gets its result), the booth is told to try again.
                unavailable.details["job_id"] = str(job.id)
                return failure_answer(slot.failure_policy, job.id, photo, mime, unavailable)
        err = job_error(job, self.t_sync)
        if err is None:
            assert job.result_media_id is not None, "job_error: a success without a result is a failure"
            try:
                # The read that found the job ended may also have read its result's live media row.
                prefetched = isinstance(job, JobWithResult)
                row = job.result if isinstance(job, JobWithResult) else None
                data, ref = await self.media.read_via(job.result_media_id, row, row_was_read=prefetched)
            except (MediaNotFound, MediaExpired):
                return failure_answer(slot.failure_policy, job.id, photo, mime, result_gone(job))
            # A re-post answered by an existing job (not `fresh`) started no paid call: no cost of its own.
            return success_answer(job, data, ref.mime, fresh=fresh)
        return failure_answer(slot.failure_policy, job.id, photo, mime, err)

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
