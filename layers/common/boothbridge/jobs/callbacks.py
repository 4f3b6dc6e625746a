"""Queue statements for providers that answer later (webhook): the attempt's secret, parking, and completion
by callback. Same rules as the rest of the queue: one statement each, fenced, NOTIFY inside."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.statements import (
    CHANNEL_DONE,
    CHANNEL_NEW,
    attempt_errors_entry,
    completion_params,
    completion_statement,
    failure_statement,
)
from boothbridge.media.ref import MediaRef


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


# Before the provider is called: its callback may arrive before the attempt even returns.
_ARM = (
    "UPDATE jobs SET webhook_token_hash = %(hash)s, updated_at = now()"
    " WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running' RETURNING id"
)

# The provider took the work and will call back: no lease (nobody is running it here); `lease_expires_at` now
# bounds the wait, after which cleanup fails the job.
_PARK = """
    UPDATE jobs
    SET status = 'waiting_provider', provider_ref = %(ref)s, lease_owner = NULL,
        lease_expires_at = now() + make_interval(secs => %(wait)s), updated_at = now()
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
    RETURNING id
    """

_CALLBACK_TARGET = "SELECT status, provider_id, webhook_token_hash FROM jobs WHERE id = %(id)s"

# Completion (or failure) by callback, fenced by the secret (only the attempt that armed it can be finished by
# it) and by status (a duplicate delivery finds the job already finished and changes nothing).
_CALLBACK_FENCE = "id = %(id)s AND webhook_token_hash = %(hash)s AND status IN ('running', 'waiting_provider')"
_COMPLETE_BY_CALLBACK = completion_statement(_CALLBACK_FENCE)
_FAIL_BY_CALLBACK = failure_statement(_CALLBACK_FENCE)

# A delivery that reported a failure another attempt may cure (a result that could not be fetched or decoded):
# back to the queue, fenced like completion; the secret is spent, so a repeated delivery changes nothing more.
_REQUEUE_BY_CALLBACK = f"""
    WITH requeued AS (
        UPDATE jobs
        SET status = 'queued', run_after = now() + make_interval(secs => %(delay)s), lease_owner = NULL,
            lease_expires_at = NULL, webhook_token_hash = NULL, provider_ref = NULL, error_code = %(code)s,
            error_message = %(message)s, attempt_errors = attempt_errors || %(entry)s, updated_at = now()
        WHERE {_CALLBACK_FENCE}
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM requeued
    """

# Parked jobs whose provider never called back in time.
_FAIL_ABANDONED = f"""
    WITH failed AS (
        UPDATE jobs
        SET status = 'failed', error_code = 'provider_no_callback',
            error_message = 'the provider did not deliver the result in time', finished_at = now(),
            updated_at = now(), lease_expires_at = NULL
        WHERE status = 'waiting_provider' AND lease_expires_at <= now()
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM failed
    """


class CallbackTarget(NamedTuple):
    status: str
    provider_id: str
    webhook_token_hash: str | None


class CallbackQueue:
    """The webhook-related statements, over the same plain-psycopg connections as the JobQueue."""

    def __init__(self, queue: JobQueue) -> None:
        self.sql = queue.sql

    async def arm(self, job_id: uuid.UUID, attempt: int, hash_: str) -> bool:
        return await self.sql.one(_ARM, {"id": job_id, "attempt": attempt, "hash": hash_}) is not None

    async def park(self, job_id: uuid.UUID, attempt: int, provider_ref: str, wait_sec: float) -> bool:
        params = {"id": job_id, "attempt": attempt, "ref": provider_ref[:500], "wait": wait_sec}
        return await self.sql.one(_PARK, params) is not None

    async def target(self, job_id: uuid.UUID) -> CallbackTarget | None:
        """(status, provider_id, webhook_token_hash) of the job, or None."""
        row = await self.sql.one(_CALLBACK_TARGET, {"id": job_id})
        return CallbackTarget(row["status"], row["provider_id"], row["webhook_token_hash"]) if row else None

    async def complete(
        self, job_id: uuid.UUID, hash_: str, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> bool:
        params = {"id": job_id, "hash": hash_, **completion_params(result, result_expires_at, cost)}
        return await self.sql.one(_COMPLETE_BY_CALLBACK, params) is not None

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
        back to the queue for another attempt in that many seconds, otherwise it fails for good."""
        entry = attempt_errors_entry(attempt, code, message, retryable, details)
        params = {"id": job_id, "hash": hash_, "code": code, "message": message, "entry": entry}
        if retry_in is None:
            return await self.sql.one(_FAIL_BY_CALLBACK, params) is not None
        return await self.sql.one(_REQUEUE_BY_CALLBACK, {**params, "delay": retry_in}) is not None

    async def fail_abandoned(self) -> list[uuid.UUID]:
        return [row["id"] for row in await self.sql.all(_FAIL_ABANDONED)]


def same_token(stored_hash: str | None, token: str) -> bool:
    """Constant-time check of a presented token against the stored hash."""
    return stored_hash is not None and hmac.compare_digest(stored_hash, token_hash(token))
