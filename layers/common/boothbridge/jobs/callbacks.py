"""Queue operations for providers that answer later (webhook): the attempt's secret, parking, and completion
by callback. Same rules as the rest of the queue: one statement each (in `boothbridge.jobs.statements`, the three
about resuming below), fenced, NOTIFY inside.

A parked job whose callback never came: for a provider that can poll work it was given (`RESUMABLE_PROVIDERS`:
fal, whose `request_id` is the job's `provider_ref`) the cleanup puts the job back on the queue with its
`provider_ref` kept, while it has attempts left; its next attempt gets that id as `ProviderRequest.resume_ref` and
polls it instead of submitting (paying) again. Other providers' abandoned jobs fail as before
(`provider_no_callback`). The same holds for a resumable provider's job that a delivery or an attempt sends back to
the queue (a result download that failed): the ref stays, the next attempt resumes it. A running attempt records
the ref as soon as its provider accepted the work (`recorder`)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import NamedTuple

from boothbridge.db.raw import RawDb
from boothbridge.jobs import statements as sql
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.statements import attempt_errors_entry, completion_params
from boothbridge.jobs.status import JobStatus
from boothbridge.media.ref import MediaRef

log = logging.getLogger(__name__)

# Providers whose adapter polls a `resume_ref` (see the module docstring).
RESUMABLE_PROVIDERS: frozenset[str] = frozenset({"fal"})

REQUEUE_ABANDONED = """
    WITH requeued AS (
        UPDATE jobs
        SET status = 'queued', run_after = now(), lease_owner = NULL, lease_expires_at = NULL,
            webhook_token_hash = NULL, error_code = 'provider_no_callback',
            error_message = 'the provider did not deliver the result in time; asking it instead',
            attempt_errors = attempt_errors || jsonb_build_array(jsonb_build_object(
                'attempt', attempt, 'code', 'provider_no_callback',
                'message', 'no callback in time; the next attempt polls the provider', 'retryable', true,
                'at', now())),
            updated_at = now()
        WHERE status = 'waiting_provider' AND lease_expires_at <= now() AND provider_ref IS NOT NULL
          AND provider_id = ANY(%(providers)s) AND attempt < max_attempts
        RETURNING id
    )
    SELECT id, pg_notify('bb_job_new', id::text) FROM requeued
    """

RESUME_REF = "SELECT provider_ref FROM jobs WHERE id = %(id)s AND provider_id = %(provider)s"

# A running attempt's provider accepted (and will bill) its work: the job keeps the provider's id of it at once, so
# an operator's cancel reaches it and a later attempt of the step resumes it. Fenced by attempt and status; the
# job's status is answered either way (the UPDATE's CTE does not change what the outer SELECT sees).
RECORD_REF = """
    WITH recorded AS (
        UPDATE jobs SET provider_ref = %(ref)s, updated_at = now()
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
        RETURNING id
    )
    SELECT status, EXISTS (SELECT 1 FROM recorded) AS recorded FROM jobs WHERE id = %(id)s
    """


def new_callback_token(job_id: uuid.UUID) -> tuple[str, str]:
    """(token for the URL, its sha256 for the database). The token names the job, so the webhook can find it."""
    secret = secrets.token_urlsafe(32)
    token = f"{job_id}.{secret}"
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def job_id_from_token(token: str) -> uuid.UUID | None:
    head, _, secret = token.partition(".")
    try:
        return uuid.UUID(head) if secret else None
    except ValueError:
        return None


class CallbackTarget(NamedTuple):
    status: JobStatus
    provider_id: str
    webhook_token_hash: str | None


class CallbackQueue:
    """The webhook-related statements, over the same plain-psycopg connections as the JobQueue."""

    def __init__(self, pool: RawDb, resumable: Collection[str] = RESUMABLE_PROVIDERS) -> None:
        self.sql = pool
        self.resumable = sorted(resumable)

    async def arm(self, job_id: uuid.UUID, attempt: int, hash_: str) -> bool:
        return await self.sql.one(sql.ARM, {"id": job_id, "attempt": attempt, "hash": hash_}) is not None

    async def park(self, job_id: uuid.UUID, attempt: int, provider_ref: str, wait_sec: float) -> bool:
        params = {"id": job_id, "attempt": attempt, "ref": provider_ref[:500], "wait": wait_sec}
        return await self.sql.one(sql.PARK, params) is not None

    async def target(self, job_id: uuid.UUID) -> CallbackTarget | None:
        """(status, provider_id, webhook_token_hash) of the job, or None."""
        row = await self.sql.one(sql.CALLBACK_TARGET, {"id": job_id})
        return CallbackTarget(JobStatus(row["status"]), row["provider_id"], row["webhook_token_hash"]) if row else None

    async def complete(
        self, job_id: uuid.UUID, hash_: str, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> bool:
        params = {"id": job_id, "hash": hash_, **completion_params(result, result_expires_at, cost)}
        return await self.sql.one(sql.COMPLETE_BY_CALLBACK, params) is not None

    async def fail(
        self,
        job_id: uuid.UUID,
        hash_: str,
        attempt: int,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        details: Mapping[str, object] | None = None,
        retry_in: float | None = None,
    ) -> bool:
        """Record a failure reported by (or found in) a delivery, fenced by the secret: with `retry_in` the job goes
        back to the queue for another attempt in that many seconds (a resumable provider's `provider_ref` kept: that
        attempt resumes the request, it does not submit again), otherwise it fails for good."""
        entry = attempt_errors_entry(attempt, code, message, retryable, details)
        params = {"id": job_id, "hash": hash_, "code": code, "message": message, "entry": entry}
        if retry_in is None:
            return await self.sql.one(sql.FAIL_BY_CALLBACK, params) is not None
        requeue = {**params, "delay": retry_in, "resumable": self.resumable}  # a resumable provider keeps its ref
        return await self.sql.one(sql.REQUEUE_BY_CALLBACK, requeue) is not None

    async def fail_abandoned(self) -> list[uuid.UUID]:
        """Parked jobs whose wait ran out: a resumable provider's go back to the queue (not returned: they have not
        ended); the others fail. Returns the ids of the jobs that failed."""
        if self.resumable:
            await self.sql.all(REQUEUE_ABANDONED, {"providers": self.resumable})
        return [row["id"] for row in await self.sql.all(sql.FAIL_ABANDONED)]

    def recorder(self, job: JobRecord, provider: object) -> Callable[[str], Awaitable[None]]:
        """`ProviderRequest.submitted` for an attempt of `job`: records the provider's id of the work it submitted
        (`provider_ref`). When the job was cancelled while the submit was in flight (the cancel found no ref to
        pass on), the provider is asked to cancel that work here (best effort, `cancel.cancel_at_provider`). Never
        raises but for the attempt's own cancellation: a failure to record is logged and the call goes on."""

        async def submitted(ref: str) -> None:
            try:
                row = await self.sql.one(RECORD_REF, {"id": job.id, "attempt": job.attempt, "ref": ref[:500]})
            except Exception:
                log.warning("job %s attempt %s: recording %s's request id failed", job.id, job.attempt, job.provider_id)
                return
            if row is not None and not row["recorded"] and row["status"] == JobStatus.CANCELLED:
                from boothbridge.jobs.cancel import ProviderWork, cancel_at_provider

                work = ProviderWork(job.provider_id, ref, job.operation_id, job.settings_json)
                await cancel_at_provider(provider, work, job.id)

        return submitted

    async def resume_ref(self, job_id: uuid.UUID, provider_id: str) -> str | None:
        """The `provider_ref` an earlier attempt left on the job, for a resumable provider (else None, no query)."""
        if provider_id not in self.resumable:
            return None
        row = await self.sql.one(RESUME_REF, {"id": job_id, "provider": provider_id})
        return str(row["provider_ref"]) if row is not None and row["provider_ref"] else None


def same_token(stored_hash: str | None, token: str) -> bool:
    """Constant-time check of a presented token against the stored hash."""
    return stored_hash is not None and hmac.compare_digest(stored_hash, token_hash(token))
