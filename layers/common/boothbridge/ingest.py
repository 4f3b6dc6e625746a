"""The booth-facing use case: validate a posted photo, run it through the queue, answer within T_sync.

HTTP-agnostic: the ingest function parses the request and maps `IngestOutcome` to a response.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from boothbridge.auth import check_ingest_password
from boothbridge.catalog import IngestLimits
from boothbridge.container import Container
from boothbridge.errors import AppError
from boothbridge.images import inspect_image
from boothbridge.jobs.model import JobRecord, NewJob
from boothbridge.jobs.waiting import wait_subscribed
from boothbridge.media.service import MediaExpired, MediaNotFound
from boothbridge.provision import INGEST_PASSWORD_KEY

log = logging.getLogger(__name__)

# Form fields never recorded anywhere.
_SECRET_FIELDS = frozenset({"password"})


@dataclass(frozen=True)
class UploadedForm:
    """The parsed multipart body: the photo (if any) and every text field as sent."""

    file: bytes | None
    filename: str | None
    declared_type: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class SlotForIngest:
    id: str
    provider_id: str | None
    operation_id: str | None
    settings_json: dict[str, Any]
    failure_policy: str
    password_digest: str | None


@dataclass
class IngestOutcome:
    """What to answer: an image (status 200) or an error; `log_status` is what the processing log records."""

    status: int
    log_status: str
    image: bytes | None = None
    mime: str | None = None
    error: AppError | None = None
    job_id: uuid.UUID | None = None
    fallback: bool = False
    cost: float | None = None
    result_media_id: uuid.UUID | None = None
    processing_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)


FormReader = Callable[[int], Awaitable[UploadedForm]]


class IngestService:
    def __init__(self, container: Container) -> None:
        self.c = container
        self.settings = container.settings
        self.t_sync = container.settings.t_sync_response

    async def process(
        self, slot_id: str, read_form: FormReader, started: float, *, is_test: bool = False
    ) -> IngestOutcome:
        """Handle one booth request; always writes one processing-log row.

        `is_test` is an operator's test run of the slot (`POST /api/slots/{id}/test`): the caller has already
        authenticated the operator and checked that the slot is theirs, which stands in for the ingest password.
        A test run is never attached to an earlier job of the same photo nor de-duplicated against booth jobs,
        never falls back to the original photo (the operator is there to see the provider's failure), and its job
        and log row are marked `is_test`, so booth statistics never count it.
        """
        # The operator may have changed T_SYNC_RESPONSE on the settings page (re-read at most every few seconds).
        self.t_sync = (await self.c.runtime.refresh()).t_sync_response
        slot: SlotForIngest | None = None
        form: UploadedForm | None = None
        source_id: uuid.UUID | None = None
        try:
            slot = await self._load_slot(slot_id)
            if is_test:
                slot = replace(slot, failure_policy="error")
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
                job, source_id = await self._job_for(slot, form, photo, mime, new_id, is_test=is_test)
                if job.id == new_id:
                    outcome = await self._await_result(slot, job, photo, mime, started, woken, fresh=True)
            if job.id != new_id:
                with self.c.hub.subscribe(job.id) as woken:
                    outcome = await self._await_result(slot, job, photo, mime, started, woken, fresh=False)
                # A re-post answered by an existing job started no paid call: its cost was logged once already.
                outcome.cost = None
        except AppError as err:
            outcome = IngestOutcome(status=err.status, log_status="ERROR", error=err)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        outcome.processing_ms = elapsed_ms
        outcome.headers["X-Processing-Ms"] = str(elapsed_ms)
        await self._finish(slot_id, slot, form, outcome, elapsed_ms, source_id, is_test)
        return outcome

    # ---- steps ---------------------------------------------------------------------------------------

    async def _load_slot(self, slot_id: str) -> SlotForIngest:
        async with self.c.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT s.id, s.provider_id, s.operation_id, s.settings_json, s.failure_policy,
                               (SELECT value->>'digest' FROM app_settings WHERE key = :pw_key) AS digest
                        FROM slots s WHERE s.id = :id
                        """
                    ),
                    {"id": slot_id, "pw_key": INGEST_PASSWORD_KEY},
                )
            ).one_or_none()
        if row is None:
            raise AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id})
        return SlotForIngest(
            id=row.id,
            provider_id=row.provider_id,
            operation_id=row.operation_id,
            settings_json=row.settings_json or {},
            failure_policy=row.failure_policy,
            password_digest=row.digest,
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
        *,
        is_test: bool = False,
    ) -> tuple[JobRecord, uuid.UUID | None]:
        """The job this photo belongs to: an existing one for the same bytes (retry-safe), or a new one.
        Returns the job and the id of the source media this request stored (None when it attached).
        A test run always gets a new job (the partial unique index leaves test jobs out, so it never conflicts)."""
        assert slot.provider_id and slot.operation_id
        sha = hashlib.sha256(photo).hexdigest()
        for _ in range(3):
            existing = None if is_test else await self.c.queue.find_reusable(slot.id, sha)
            if existing is not None:
                return existing, None
            await self._check_backlog(slot.provider_id)
            source = await self.c.media.write_bytes("source", photo, mime)
            now = datetime.now(UTC)
            new = NewJob(
                id=new_id,
                slot_id=slot.id,
                provider_id=slot.provider_id,
                operation_id=slot.operation_id,
                settings_json=slot.settings_json,
                source_media_id=source.id,
                source_sha256=sha,
                max_attempts=self.settings.max_attempts,
                deadline_at=now + timedelta(seconds=self.settings.job_deadline_sec),
                request_meta=public_fields(form),
                is_test=is_test,
            )
            # Until the request ends the source must outlive the wait; its final expiry is set afterwards.
            hold_until = now + timedelta(seconds=self.t_sync + self.settings.source_ttl_sec)
            try:
                job, created = await self.c.queue.enqueue(new, source, hold_until)
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

    async def _check_backlog(self, provider_id: str) -> None:
        """Back-pressure: refuse new work when this provider's backlog is already far beyond what it can run."""
        entry = self.c.catalog.provider(provider_id)
        assert entry is not None
        cap = entry.ingest.max_parallel_jobs * self.settings.backlog_factor
        async with self.c.db.connect() as conn:
            depth = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM jobs WHERE provider_id = :p AND status IN ('queued', 'running')"
                        " AND NOT is_test"
                    ),
                    {"p": provider_id},
                )
            ).scalar_one()
        if depth >= cap:
            raise AppError(
                503,
                "provider_backlog_full",
                "too many photos are waiting for this provider; try again shortly",
                {"provider_id": provider_id, "in_flight": depth, "limit": cap},
                headers={"Retry-After": "5"},
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
            job = await wait_subscribed(
                self.c.queue,
                self.c.hub,
                job.id,
                woken,
                deadline,
                self.settings.fallback_poll_sec,
                skip_first_read=fresh,
            )
        if job.status == "succeeded" and job.result_media_id is not None:
            try:
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
        is_test: bool = False,
    ) -> None:
        """The processing-log row, and the stored photo's expiry: kept only briefly after its request ends
        (SPEC §5). One statement, so one round trip."""
        err = outcome.error
        try:
            async with self.c.db.connect() as conn:
                await conn.execute(
                    _FINISH,
                    {
                        "slot": slot.id if slot else None,
                        "requested": slot_id[:200],
                        "job": outcome.job_id,
                        "status": outcome.log_status,
                        "http": outcome.status,
                        "ms": elapsed_ms,
                        "cost": outcome.cost,
                        "code": err.code if err else None,
                        "msg": err.message if err else None,
                        "fallback": outcome.fallback,
                        "is_test": is_test,
                        "fields": public_fields(form) if form else {},
                        "source": source_id,
                        "source_expires": datetime.now(UTC) + timedelta(seconds=self.settings.source_ttl_sec),
                    },
                )
        except Exception:  # the booth's answer matters more than its log row
            log.exception("could not write the processing log for slot %s", slot_id)


_FINISH = text(
    """
    WITH source AS (
        UPDATE media_objects SET expires_at = :source_expires WHERE id = CAST(:source AS uuid)
    )
    INSERT INTO processing_log (slot_id, requested_slot, job_id, status, http_status, response_time_ms, cost,
                                error_code, error_message, fallback, is_test, request_fields)
    VALUES (:slot, :requested, :job, :status, :http, :ms, :cost, :code, :msg, :fallback, :is_test, :fields)
    """
).bindparams(bindparam("fields", type_=JSONB))


def public_fields(form: UploadedForm) -> dict[str, Any]:
    """The booth's form fields as recorded (never the password), plus what we know of the file."""
    fields: dict[str, Any] = {k: v[:1000] for k, v in form.fields.items() if k not in _SECRET_FIELDS}
    if form.file is not None:
        fields["_file"] = {
            "filename": (form.filename or "")[:255],
            "declared_type": form.declared_type,
            "size_bytes": len(form.file),
        }
    return fields


def too_large(limit: int) -> AppError:
    return AppError(413, "file_too_large", "the upload is larger than accepted", {"max_bytes": limit})


def provider_failed(job: JobRecord, message: str | None = None) -> AppError:
    return AppError(
        502,
        "provider_failed",
        message or "the provider could not process the photo",
        {"job_id": str(job.id), "reason": job.error_code, "attempts": job.attempt},
    )
