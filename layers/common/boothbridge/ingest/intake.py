"""Turning a stored booth photo into its job: attach to the job already running for the same bytes on the slot
(retry-safe; `ingest.choice.attaches` says when a post that chose another variant does not), or refuse under
back-pressure, or enqueue a new job with its pipeline snapshot and wake a worker."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.ingest.admission import check_backlog, fallback_at, seconds_left
from boothbridge.ingest.choice import VARIANT_KEY, attaches, first_call, stored_pipeline
from boothbridge.ingest.model import SlotForIngest, UploadedForm, public_fields
from boothbridge.ingest.upload import PhotoUpload, StoredPhoto
from boothbridge.jobs.dispatch import JobDispatcher
from boothbridge.jobs.model import JobRecord, NewJob
from boothbridge.jobs.queue import JobQueue
from boothbridge.media.ref import MediaRef
from boothbridge.platform.logs import bind_job
from boothbridge.settings import Settings

log = logging.getLogger(__name__)


class JobIntake:
    """The queue side of `IngestService` (built by it with the parts it shares)."""

    def __init__(self, *, settings: Settings, catalog: Catalog, queue: JobQueue, dispatcher: JobDispatcher) -> None:
        self.settings = settings
        self.catalog = catalog
        self.queue = queue
        self.dispatcher = dispatcher

    async def job_for(
        self,
        slot: SlotForIngest,
        form: UploadedForm,
        photo: StoredPhoto,
        upload: PhotoUpload,
        new_id: uuid.UUID,
        started: float,
        t_sync: float,
        *,
        pipeline: dict[str, Any],
        variant: dict[str, Any] | None = None,
        is_test: bool = False,
    ) -> tuple[JobRecord, MediaRef | None]:
        """The job this photo belongs to: an existing one for the same bytes (retry-safe), or a new one running
        `pipeline` (the snapshot, `ingest.choice.pipeline_for`; the job row names its first step's own call, whose
        provider's backlog and limits apply). `variant`: the choice as recorded in the job's `request_meta`.
        Returns the job and the source media this request stored (None when it attached: the caller drops its
        copy). A test run always gets a new job (the partial unique index leaves test jobs out, so it never
        conflicts). Logs `work_before_enqueue_ms` when it enqueued (see `_enqueued`)."""
        provider_id, operation_id, settings_json = first_call(pipeline)
        source, sha = photo.ref, photo.ref.sha256
        meta = public_fields(form)
        if variant is not None:
            meta[VARIANT_KEY] = variant
        for _ in range(3):
            admission = await self.queue.admit(slot.id, sha, provider_id, reuse=not is_test)
            earlier = admission.reusable
            if earlier is not None and attaches(earlier, pipeline):
                await upload.drop()  # a re-post: the job has the photo already
                return earlier, None
            if earlier is not None:
                # The same photo's ended job made something else (another variant, or the slot changed): this
                # post is a new request. No job of this photo is in flight (the queue found none), so it inserts.
                log.info("job %s did other work for this photo; a new job runs this post's choice", earlier.id)
            now = datetime.now(UTC)
            deadline_at = now + timedelta(seconds=self.settings.job_deadline_sec)
            entry = self.catalog.provider(provider_id)
            assert entry is not None, "slot_limits found the provider in the catalog"
            check_backlog(
                provider_id,
                entry.ingest,
                admission.depth,
                backlog_factor=self.settings.backlog_factor,
                job_deadline_sec=self.settings.job_deadline_sec,
            )
            new = NewJob(
                id=new_id,
                slot_id=slot.id,
                provider_id=provider_id,
                operation_id=operation_id,
                settings_json=settings_json,
                source_media_id=source.id,
                source_sha256=sha,
                max_attempts=self.settings.max_attempts,
                deadline_at=deadline_at,
                request_meta=meta,
                is_test=is_test,
                booth_fallback_at=fallback_at(
                    slot.failure_policy, now, seconds_left(started, t_sync, time.monotonic())
                ),
                pipeline=stored_pipeline(pipeline),
            )
            # The photo must outlive every attempt the job may start: a queue can hold it past the booth's wait
            # (a backlog up to the job's deadline). When the request ends, its expiry is set again (see
            # `ingest.processing_log`): SOURCE_TTL after the job's end, or this hold while the job can still run.
            hold_until = deadline_at + timedelta(seconds=self.settings.source_ttl_sec)
            job, created = await self.queue.enqueue(new, source, hold_until)
            if not created:
                # No row: the same photo raced in on another request, or this very statement ran twice (the
                # database blinked after inserting our job, and the retry met our own row).
                mine = await self.queue.get(new_id)
                if mine is not None:
                    job, created = mine, True
            if created:
                assert job is not None
                upload.handed_over()
                self._enqueued(job, form, started)
                await self.dispatcher.dispatch(job.id)
                return job, source
            # The same photo raced in on another request: look again (attach to that job, and drop our copy, if it is
            # still reusable; else enqueue again). Our copy is kept until then: the next round may need it.
        raise AppError(503, "busy", "the photo could not be queued, try again", headers={"Retry-After": "1"})

    @staticmethod
    def _enqueued(job: JobRecord, form: UploadedForm, started: float) -> None:
        """Log the enqueue with `work_before_enqueue_ms`: this request's time from its start to the enqueue's
        return, less the time its body took to arrive (what the server spent, not what the network did)."""
        work_ms = (time.monotonic() - started - form.body_wait_sec) * 1000
        bind_job(job.id)  # this line, and every later one of the request, names its job
        log.info(
            "job %s enqueued",
            job.id,
            extra={"work_before_enqueue_ms": round(work_ms, 2), "photo_bytes": form.photo_size},
        )
