"""Queue statements for providers that answer later (webhook): the attempt's secret, parking, and completion
by callback. Same rules as the rest of the queue: one statement each, fenced, NOTIFY inside."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text

from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.statements import (
    CHANNEL_DONE,
    attempt_error,
    completion_params,
    completion_statement,
    failure_statement,
)
from boothbridge.media.service import MediaRef


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
_ARM = text(
    "UPDATE jobs SET webhook_token_hash = :hash, updated_at = now()"
    " WHERE id = :id AND attempt = :attempt AND status = 'running' RETURNING id"
)

# The provider took the work and will call back: no lease (nobody is running it here); `lease_expires_at` now
# bounds the wait, after which cleanup fails the job.
_PARK = text(
    """
    UPDATE jobs
    SET status = 'waiting_provider', provider_ref = :ref, lease_owner = NULL,
        lease_expires_at = now() + make_interval(secs => :wait), updated_at = now()
    WHERE id = :id AND attempt = :attempt AND status = 'running'
    RETURNING id
    """
)

_CALLBACK_TARGET = text("SELECT status, provider_id, webhook_token_hash FROM jobs WHERE id = :id")

# Completion (or failure) by callback, fenced by the secret (only the attempt that armed it can be finished by
# it) and by status (a duplicate delivery finds the job already finished and changes nothing).
_CALLBACK_FENCE = "id = :id AND webhook_token_hash = :hash AND status IN ('running', 'waiting_provider')"
_COMPLETE_BY_CALLBACK = completion_statement(_CALLBACK_FENCE)
_FAIL_BY_CALLBACK = failure_statement(_CALLBACK_FENCE)

# Parked jobs whose provider never called back in time.
_FAIL_ABANDONED = text(
    f"""
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
)


class CallbackQueue:
    """The webhook-related statements, over the same autocommit engine as the JobQueue."""

    def __init__(self, queue: JobQueue) -> None:
        self.db = queue.db

    async def arm(self, job_id: uuid.UUID, attempt: int, hash_: str) -> bool:
        async with self.db.connect() as conn:
            return (await conn.execute(_ARM, {"id": job_id, "attempt": attempt, "hash": hash_})).first() is not None

    async def park(self, job_id: uuid.UUID, attempt: int, provider_ref: str, wait_sec: float) -> bool:
        async with self.db.connect() as conn:
            row = await conn.execute(
                _PARK, {"id": job_id, "attempt": attempt, "ref": provider_ref[:500], "wait": wait_sec}
            )
            return row.first() is not None

    async def target(self, job_id: uuid.UUID) -> Any:
        """(status, provider_id, webhook_token_hash) of the job, or None."""
        async with self.db.connect() as conn:
            return (await conn.execute(_CALLBACK_TARGET, {"id": job_id})).one_or_none()

    async def complete(
        self, job_id: uuid.UUID, hash_: str, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> bool:
        params = {"id": job_id, "hash": hash_, **completion_params(result, result_expires_at, cost)}
        async with self.db.connect() as conn:
            return (await conn.execute(_COMPLETE_BY_CALLBACK, params)).first() is not None

    async def fail(self, job_id: uuid.UUID, hash_: str, attempt: int, code: str, message: str) -> bool:
        entry = attempt_error(attempt, code, message, False)
        async with self.db.connect() as conn:
            row = await conn.execute(
                _FAIL_BY_CALLBACK, {"id": job_id, "hash": hash_, "code": code, "message": message, "entry": [entry]}
            )
            return row.first() is not None

    async def fail_abandoned(self) -> list[uuid.UUID]:
        async with self.db.connect() as conn:
            return [row.id for row in await conn.execute(_FAIL_ABANDONED)]


def same_token(stored_hash: str | None, token: str) -> bool:
    """Constant-time check of a presented token against the stored hash."""
    return stored_hash is not None and hmac.compare_digest(stored_hash, token_hash(token))
