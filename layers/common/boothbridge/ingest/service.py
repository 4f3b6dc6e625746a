"""The booth-facing use case: validate a posted photo, run it through the queue, answer within T_sync.

HTTP-agnostic: the ingest function parses the request and maps `IngestOutcome` to a response.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from boothbridge.accounts.auth import check_ingest_password
from boothbridge.bootstrap import Container
from boothbridge.catalog import IngestLimits
from boothbridge.db.raw import DatabaseUnavailable, db_deadline, is_connection_trouble, retry_safe, trouble_reason
from boothbridge.errors import AppError
from boothbridge.images.upload import inspect_image
from boothbridge.ingest.model import (
    IngestOutcome,
    SlotForIngest,
    UploadedForm,
    provider_failed,
    public_fields,
    too_large,
)
from boothbridge.ingest.processing_log import record_request
from boothbridge.jobs.model import JobRecord, JobWithResult, NewJob
from boothbridge.jobs.waiting import wait_subscribed
from boothbridge.media.service import MediaExpired, MediaNotFound
from boothbridge.platform.provision import INGEST_PASSWORD_KEY
from boothbridge.slots import SlotUpdate

log = logging.getLogger(__name__)

FormReader = Callable[[int], Awaitable[UploadedForm]]

# The slot as ingest needs it, and the ingest password's digest, in one read on every request (a changed slot or
# password applies at once). A read: retried on a fresh connection when the database blinks.
_SLOT = retry_safe("""
    SELECT s.id, s.provider_id, s.operation_id, s.settings_json, s.failure_policy,
           (SELECT value->>'digest' FROM app_settings WHERE key = %(pw_key)s) AS digest
    FROM slots s WHERE s.id = %(id)s
    """)

# How long the request's own log row may wait for a database that blinked (the booth is waiting for its answer).
_LOG_RETRY_SEC = 2.0


class IngestService:
    def __init__(self, container: Container) -> None:
        self.c = container
        self.settings = container.settings
        self.t_sync = container.settings.t_sync_response

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
            self.t_sync = (await self.c.runtime.refresh()).t_sync_response
        except Exception as exc:
            if not is_connection_trouble(exc):
                raise
            self.t_sync = self.c.runtime.values.t_sync_response
        slot: SlotForIngest | None = None
        form: UploadedForm | None = None
        source_id: uuid.UUID | None = None
        job: JobRecord | None = None
        # Every retried statement of this request gives up when the booth's answer is due.
        with db_deadline(started + self.t_sync):
            try:
                slot = await self._load_slot(slot_id)
                if is_test:
                    slot = replace(slot, failure_policy="error")
                    if config is not None:
                        slot = replace(
                            slot,
                            provider_id=config.provider_id,
                            operation_id=config.operation_id,
                            settings_json=config.settings_json,
                        )
                limits = self._limits(slot)
                form = await read_form(self._max_bytes(limits))
                if not is_test:
                    self._check_password(slot, form)
                if limits is None:
                    raise AppError(409, "slot_not_configured", "this slot has no provider and operation configured")
                photo, mime = await self._validated_photo(form, limits)
                assert self.c.hub is not None, "ingest needs the LISTEN hub"
                new_id = uuid.uuid4()
                # Subscribed before the job exists, so its end cannot be missed and needs no first read.
                with self.c.hub.subscribe(new_id) as woken:
                    job, source_id = await self._job_for(slot, form, photo, mime, new_id, started, is_test=is_test)
                    if job.id == new_id:
                        outcome = await self._await_result(slot, job, photo, mime, started, woken, fresh=True)
                if job.id != new_id:
                    with self.c.hub.subscribe(job.id) as woken:
                        outcome = await self._await_result(slot, job, photo, mime, started, woken, fresh=False)
                    # A re-post answered by an existing job started no paid call: its cost was logged once already.
                    outcome.cost = None
            except AppError as err:
                outcome = IngestOutcome(status=err.status, log_status="ERROR", error=err)
            except Exception as exc:
                # A statement that is not retried (SQLAlchemy's reads of media) met a database that blinked: 503 with
                # Retry-After, never a 500. Nothing was stored half: a photo stored before its job row was deleted.
                if not is_connection_trouble(exc):
                    raise
                log.warning("ingest on %s: the database is not reachable (%s)", slot_id, type(exc).__name__)
                unavailable = DatabaseUnavailable(trouble_reason(exc))
                outcome = IngestOutcome(status=unavailable.status, log_status="ERROR", error=unavailable)
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
        if "\x00" in slot_id or len(slot_id) > 200:  # PostgreSQL text cannot hold NUL; no slot id is that long
            raise AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id.replace("\x00", "")[:200]})
        row = await self.c.sql.one(_SLOT, {"id": slot_id, "pw_key": INGEST_PASSWORD_KEY})
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

    def _limits(self, slot: SlotForIngest) -> IngestLimits | None:
        """The provider's ingest limits, or None when the slot cannot run (not configured, or configured for
        something this deployment does not have)."""
        if not slot.provider_id or not slot.operation_id:
            return None
        if not self.c.catalog.supports(slot.provider_id, slot.operation_id):
            return None
        if slot.provider_id not in self.c.providers:
            return None
        entry = self.c.catalog.provider(slot.provider_id)
        return entry.ingest if entry else None

    def _max_bytes(self, limits: IngestLimits | None) -> int:
        cap = self.settings.max_upload_bytes
        return min(cap, limits.max_file_size_bytes) if limits else cap

    def _check_password(self, slot: SlotForIngest, form: UploadedForm) -> None:
        digest = slot.password_digest
        candidate = form.fields.get("password")
        if not digest or not check_ingest_password(self.c.credentials.ingest_hmac_key, digest, candidate):
            raise AppError(401, "invalid_password", "wrong or missing ingest password")

    async def _validated_photo(self, form: UploadedForm, limits: IngestLimits) -> tuple[bytes, str]:
        if form.file is None:
            raise AppError(400, "file_missing", "the form has no fileToUpload part")
        if not form.file:
            raise AppError(400, "file_empty", "the uploaded file is empty")
        if len(form.file) > self._max_bytes(limits):
            raise too_large(self._max_bytes(limits))
        info = await asyncio.to_thread(inspect_image, form.file, limits.allowed_mime, self.settings.max_image_pixels)
        return form.file, info.mime

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
            admission = await self.c.queue.admit(slot.id, sha, slot.provider_id, reuse=not is_test)
            if admission.reusable is not None:
                return admission.reusable, None
            now = datetime.now(UTC)
            deadline_at = now + timedelta(seconds=self.settings.job_deadline_sec)
            self._check_backlog(slot.provider_id, admission.depth)
            source = await self.c.media.write_bytes("source", photo, mime, sha256=sha)
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
                booth_fallback_at=self._fallback_at(slot, started, now),
            )
            # The photo must outlive every attempt the job may start: a queue can hold it past the booth's wait
            # (a backlog up to the job's deadline). When the request ends, its expiry is set again (see
            # `ingest_log`): SOURCE_TTL after the job's end, or this hold while the job can still run.
            hold_until = deadline_at + timedelta(seconds=self.settings.source_ttl_sec)
            try:
                job, created = await self.c.queue.enqueue(new, source, hold_until)
                if not created:
                    # No row: the same photo raced in on another request, or this very statement ran twice (the
                    # database blinked after inserting our job, and the retry met our own row).
                    mine = await self.c.queue.get(new_id)
                    if mine is not None:
                        job, created = mine, True
            except BaseException:
                await self.c.store.delete(source.storage_key)
                raise
            if created:
                assert job is not None
                await self.c.dispatcher.dispatch(job.id)
                return job, source.id
            # The same photo raced in on another request: attach to that job, drop our copy.
            await self.c.store.delete(source.storage_key)
        raise AppError(503, "busy", "the photo could not be queued, try again", headers={"Retry-After": "1"})

    def _fallback_at(self, slot: SlotForIngest, started: float, now: datetime) -> datetime | None:
        """When this request will answer with the booth's own photo if no result has come (policy `original`):
        the worker starts no paid attempt that cannot end before then. None when the booth waits for a result or
        a 504 (after which the job goes on and a re-post collects the kept result)."""
        if slot.failure_policy != "original":
            return None
        return now + timedelta(seconds=max(self.t_sync - (time.monotonic() - started), 0.0))

    def _check_backlog(self, provider_id: str, depth: int) -> None:
        """Back-pressure: refuse new work when this provider's backlog (`depth`: its queued and running booth
        jobs, read by `JobQueue.admit`) is already far beyond what it can run, or when a job queued behind it
        could not end before its deadline (`backlog_wait`). A job accepted and then dropped at its deadline (its
        photo kept for nothing, the booth told 504 and its re-post 502) helps nobody: the booth is told 503 with
        `Retry-After` now, and uses its own photo or posts again."""
        entry = self.c.catalog.provider(provider_id)
        assert entry is not None
        limits = entry.ingest
        cap = limits.max_parallel_jobs * self.settings.backlog_factor
        if depth >= cap:
            raise AppError(
                503,
                "provider_backlog_full",
                "too many photos are waiting for this provider; try again shortly",
                {"provider_id": provider_id, "in_flight": depth, "limit": cap},
                headers={"Retry-After": "5"},
            )
        ends_in, retry_after = backlog_wait(limits, depth, self.settings.job_deadline_sec)
        if retry_after is not None:
            raise AppError(
                503,
                "provider_backlog_full",
                "the photos waiting for this provider would keep this one past its deadline; try again shortly",
                {
                    "provider_id": provider_id,
                    "in_flight": depth,
                    "estimated_end_sec": round(ends_in, 1),
                    "job_deadline_sec": self.settings.job_deadline_sec,
                },
                headers={"Retry-After": str(retry_after)},
            )

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
        assert self.c.hub is not None
        if not job.is_terminal:
            deadline = started + self.t_sync
            try:
                job = await wait_subscribed(
                    self.c.queue,
                    self.c.hub,
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
                return self._failure(slot, job, photo, mime, unavailable)
        if job.status == "succeeded" and job.result_media_id is not None:
            try:
                if isinstance(job, JobWithResult):
                    # The read that found the job ended also read its result's live media row (None: gone).
                    if job.result is None:
                        raise MediaNotFound(str(job.result_media_id))
                    ref = job.result
                    data = await self.c.media.read_described(ref)
                else:
                    data, ref = await self.c.media.read(job.result_media_id)
            except (MediaNotFound, MediaExpired):
                return self._failure(slot, job, photo, mime, provider_failed(job, "the result is no longer stored"))
            return IngestOutcome(
                status=200,
                log_status="SUCCESS",
                image=data,
                mime=ref.mime,
                job_id=job.id,
                cost=float(job.cost) if job.cost is not None else None,
                result_media_id=job.result_media_id,
            )
        if job.status == "cancelled":
            cancelled = AppError(502, "job_cancelled", "the job was cancelled by an operator", {"job_id": str(job.id)})
            return self._failure(slot, job, photo, mime, cancelled)
        if job.is_terminal:
            return self._failure(slot, job, photo, mime, provider_failed(job))
        err = AppError(
            504,
            "processing_timeout",
            "no result within the response time; the job continues and a re-post of the same photo gets it",
            {"job_id": str(job.id), "t_sync_response": self.t_sync},
        )
        out = self._failure(slot, job, photo, mime, err)
        out.log_status = "TIMEOUT"
        return out

    def _failure(self, slot: SlotForIngest, job: JobRecord, photo: bytes, mime: str, err: AppError) -> IngestOutcome:
        if slot.failure_policy == "original":
            return IngestOutcome(
                status=200,
                log_status="ERROR",
                image=photo,
                mime=mime,
                job_id=job.id,
                fallback=True,
                error=err,
                headers={"X-Fallback": "original"},
            )
        return IngestOutcome(status=err.status, log_status="ERROR", error=err, job_id=job.id)

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
        unavailable = outcome.error is not None and outcome.error.code == "database_unavailable"
        with db_deadline(time.monotonic() + (0.0 if unavailable else _LOG_RETRY_SEC)):
            await record_request(
                self.c.sql,
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


def backlog_wait(limits: IngestLimits, depth: int, job_deadline_sec: float) -> tuple[float, int | None]:
    """When a job queued now behind `depth` queued and running jobs of a provider would end, in seconds (an
    estimate: each round of `max_parallel_jobs` jobs takes the catalog's `typical_sec`), and, when that is past
    the job's deadline, the seconds after which enough of the backlog should have gone for a new job to fit
    (None: it fits now). A provider without `typical_sec` gives no estimate; nor does an empty queue (a single
    attempt that cannot end in time is the worker's to refuse)."""
    if limits.typical_sec <= 0 or depth <= 0:
        return 0.0, None
    parallel = max(1, limits.max_parallel_jobs)
    rounds = depth // parallel + 1
    ends_in = rounds * limits.typical_sec
    if ends_in <= job_deadline_sec:
        return ends_in, None
    rounds_that_fit = math.floor(job_deadline_sec / limits.typical_sec)
    return ends_in, max(1, math.ceil((rounds - rounds_that_fit) * limits.typical_sec))
