"""The job table as a queue. Every statement that matters is written out in SQL, with why it is shaped so.

Channels: `bb_job_new` (payload: job id) when work becomes claimable, `bb_job_done` (payload: job id) when a
job reaches a terminal state. NOTIFY runs inside the transaction that changes the row, so listeners are told
only after the change is visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from boothbridge.db.engine import autocommit
from boothbridge.jobs.model import JOB_COLUMNS, JobRecord, NewJob
from boothbridge.media.service import MediaRef

CHANNEL_NEW = "bb_job_new"
CHANNEL_DONE = "bb_job_done"

# Claimable: queued work whose time has come, and running work whose lease ran out (its worker died or hung).
_CLAIMABLE = "((status = 'queued' AND run_after <= now()) OR (status = 'running' AND lease_expires_at <= now()))"

# Which providers have claimable work (optionally: only the one job a Lambda worker was invoked for).
_PROVIDERS_WITH_WORK = text(
    f"SELECT DISTINCT provider_id FROM jobs WHERE {_CLAIMABLE} AND (CAST(:only_id AS uuid) IS NULL OR id = :only_id)"
)

# Serialises capacity decisions for one provider across all claimers (every process, every host): without it two
# claimers could both count one free place and both take it. Transaction-scoped, so it cannot leak. Every claimer
# locks its providers in sorted order (unnest yields the sorted array in order), so claimers wait for each other
# but can never deadlock.
_LOCK_PROVIDERS = text(
    "SELECT pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(p))"
    " FROM unnest(CAST(:providers AS text[])) AS p"
)

# Under those locks: each provider's free places (its limit minus running jobs whose lease is valid), then the
# oldest claimable jobs, at most `free` of each provider (so one provider's backlog never hides another's work),
# in arrival order across providers. `exhausted` marks a dead worker's job that has no attempts left.
_CANDIDATES = text(
    """
    WITH cap AS (
        SELECT p.provider_id,
               p.max_parallel - (SELECT count(*) FROM jobs r
                                 WHERE r.provider_id = p.provider_id AND r.status = 'running'
                                   AND r.lease_expires_at > now()) AS free
        FROM unnest(CAST(:providers AS text[]), CAST(:limits AS int[])) AS p(provider_id, max_parallel)
    ), ranked AS (
        SELECT j.id, j.run_after, j.created_at, c.free,
               (j.status = 'running' AND j.attempt >= j.max_attempts) AS exhausted,
               row_number() OVER (PARTITION BY j.provider_id ORDER BY j.run_after, j.created_at) AS place
        FROM jobs j JOIN cap c USING (provider_id)
        WHERE c.free > 0
          AND ((j.status = 'queued' AND j.run_after <= now())
               OR (j.status = 'running' AND j.lease_expires_at <= now()))
          AND (CAST(:only_id AS uuid) IS NULL OR j.id = :only_id)
    )
    SELECT id, exhausted FROM ranked WHERE place <= free ORDER BY run_after, created_at LIMIT :max_jobs
    """
)

# Taking the chosen jobs. FOR UPDATE SKIP LOCKED: a row another transaction holds (a cancel, a cleanup) is left
# for later rather than waited for, and the claimable condition is re-checked on the locked row. The new attempt
# number is the fencing token: whoever held the previous attempt can no longer heartbeat, complete or fail it.
_TAKE = text(
    f"""
    WITH picked AS (
        SELECT id FROM jobs
        WHERE id = ANY(:ids) AND {_CLAIMABLE}
        FOR UPDATE SKIP LOCKED
    )
    UPDATE jobs
    SET status = 'running', attempt = attempt + 1, lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease), started_at = coalesce(started_at, now()),
        updated_at = now()
    FROM picked WHERE jobs.id = picked.id
    RETURNING {", ".join("jobs." + c for c in JOB_COLUMNS.split(", "))}
    """
)

# A dead worker's job with no attempts left fails instead of being taken; its waiters are woken.
_FAIL_EXHAUSTED = text(
    f"""
    WITH failed AS (
        UPDATE jobs
        SET status = 'failed', error_code = 'lease_expired', error_message = :message,
            attempt_errors = attempt_errors || jsonb_build_array(jsonb_build_object(
                'attempt', attempt, 'code', 'lease_expired', 'message', CAST(:message AS text), 'retryable', false,
                'at', now())),
            finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE id = ANY(:ids) AND status = 'running' AND lease_expires_at <= now() AND attempt >= max_attempts
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM failed
    """
)


# One statement: the job, its source media row (only if the job was inserted) and the NOTIFY. ON CONFLICT on the
# partial unique index is the retry-safety: a second identical photo on the slot while the first is in flight
# inserts nothing and returns no row.
_ENQUEUE = text(
    f"""
    WITH job AS (
        INSERT INTO jobs (id, slot_id, status, provider_id, operation_id, settings_json, source_media_id,
                          source_sha256, max_attempts, deadline_at, request_meta, is_test)
        VALUES (:id, :slot, 'queued', :provider, :operation, :settings, :source, :sha, :max_attempts, :deadline,
                :meta, :is_test)
        ON CONFLICT (slot_id, source_sha256)
            WHERE status IN ('queued', 'running', 'waiting_provider') AND NOT is_test
            DO NOTHING
        RETURNING {JOB_COLUMNS}
    ), source AS (
        INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
        SELECT :source, :m_key, :m_mime, :m_size, :m_sha, 'source', :m_expires, job.id FROM job
    )
    SELECT job.*, pg_notify('{CHANNEL_NEW}', job.id::text) FROM job
    """
).bindparams(bindparam("settings", type_=JSONB), bindparam("meta", type_=JSONB))


def completion_statement(fence: str) -> TextClause:
    """One statement: fenced success, the result's media row, and the NOTIFY to waiters. `fence` decides who
    may finish the job; a caller it does not match changes nothing, inserts no media row and notifies nobody."""
    return text(
        f"""
        WITH done AS (
            UPDATE jobs
            SET status = 'succeeded', result_media_id = :result, cost = :cost, finished_at = now(),
                updated_at = now(), lease_owner = NULL, lease_expires_at = NULL, error_code = NULL,
                error_message = NULL
            WHERE {fence}
            RETURNING id
        ), result AS (
            INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
            SELECT :result, :m_key, :m_mime, :m_size, :m_sha, 'result', :m_expires, done.id FROM done
        )
        SELECT done.id, pg_notify('{CHANNEL_DONE}', done.id::text) FROM done
        """
    )


def completion_params(result: MediaRef, result_expires_at: datetime, cost: float) -> dict[str, Any]:
    return {
        "cost": cost,
        "result": result.id,
        "m_key": result.storage_key,
        "m_mime": result.mime,
        "m_size": result.size_bytes,
        "m_sha": result.sha256,
        "m_expires": result_expires_at,
    }


def failure_statement(fence: str) -> TextClause:
    """One statement: failing for good, the error recorded, the waiters woken; `fence` as for completion."""
    return text(
        f"""
        WITH failed AS (
            UPDATE jobs
            SET status = 'failed', error_code = :code, error_message = :message,
                attempt_errors = attempt_errors || :entry, finished_at = now(), updated_at = now(),
                lease_owner = NULL, lease_expires_at = NULL
            WHERE {fence}
            RETURNING id
        )
        SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM failed
        """
    ).bindparams(bindparam("entry", type_=JSONB))


# Only the attempt holding the job may finish it.
_COMPLETE = completion_statement("id = :id AND attempt = :attempt AND status = 'running'")
_FAIL = failure_statement("id = :id AND attempt = :attempt AND status IN ('running', 'queued')")

# A retry: back to the queue after a delay, the error recorded; claimers are told (a delayed job is picked up by
# their timers or fallback poll). Fenced like completion.
_REQUEUE = text(
    f"""
    WITH requeued AS (
        UPDATE jobs
        SET status = 'queued', run_after = now() + make_interval(secs => :delay), lease_owner = NULL,
            lease_expires_at = NULL, error_code = :code, error_message = :message,
            attempt_errors = attempt_errors || :entry, updated_at = now()
        WHERE id = :id AND attempt = :attempt AND status = 'running'
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM requeued
    """
).bindparams(bindparam("entry", type_=JSONB))


class JobQueue:
    """Queue operations over the `jobs` table. `limits` maps provider id -> max parallel running jobs."""

    def __init__(self, engine: AsyncEngine, limits: Mapping[str, int], lease_sec: float) -> None:
        self.engine = engine  # transactions (claim)
        self.db = autocommit(engine)  # single statements: no BEGIN/COMMIT round trips
        self.limits = dict(limits)
        self.lease_sec = lease_sec

    # ---- enqueue -------------------------------------------------------------------------------------

    async def find_reusable(self, slot_id: str, sha256: str) -> JobRecord | None:
        """A job for the same photo on the same slot that a re-post should attach to instead of paying twice:
        one still in flight, or one that succeeded and whose result has not expired."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        f"""
                        SELECT {", ".join("j." + c for c in JOB_COLUMNS.split(", "))} FROM jobs j
                        LEFT JOIN media_objects m ON m.id = j.result_media_id
                        WHERE j.slot_id = :slot AND j.source_sha256 = :sha AND j.is_test = false
                          AND (j.status IN ('queued', 'running', 'waiting_provider')
                               OR (j.status = 'succeeded' AND m.id IS NOT NULL
                                   AND (m.expires_at IS NULL OR m.expires_at > now())))
                        ORDER BY (j.status <> 'succeeded'), j.created_at DESC
                        LIMIT 1
                        """
                    ),
                    {"slot": slot_id, "sha": sha256},
                )
            ).one_or_none()
        return JobRecord.from_row(row) if row else None

    async def enqueue(
        self, job: NewJob, source: MediaRef, source_expires_at: datetime
    ) -> tuple[JobRecord | None, bool]:
        """Insert the job and its source media row and announce it, in one statement (so one round trip).

        Returns (job, True) when inserted. When an identical photo is already in flight on this slot (the
        partial unique index fires) nothing is inserted and (None, False) is returned: the caller attaches
        to the existing job and deletes the bytes it stored.
        """
        async with self.db.connect() as conn:
            inserted = (
                await conn.execute(
                    _ENQUEUE,
                    {
                        "id": job.id,
                        "slot": job.slot_id,
                        "provider": job.provider_id,
                        "operation": job.operation_id,
                        "settings": job.settings_json,
                        "source": job.source_media_id,
                        "sha": job.source_sha256,
                        "max_attempts": job.max_attempts,
                        "deadline": job.deadline_at,
                        "meta": job.request_meta,
                        "is_test": job.is_test,
                        "m_key": source.storage_key,
                        "m_mime": source.mime,
                        "m_size": source.size_bytes,
                        "m_sha": source.sha256,
                        "m_expires": source_expires_at,
                    },
                )
            ).one_or_none()
        if inserted is None:
            return None, False
        return JobRecord.from_row(inserted), True

    # ---- claim ---------------------------------------------------------------------------------------

    async def claim(self, owner: str, max_jobs: int, only_id: uuid.UUID | None = None) -> list[JobRecord]:
        """Take up to `max_jobs` claimable jobs for `owner`, honouring each provider's parallel limit.

        Expired leases are taken over here too: a job whose worker died becomes claimable when its lease
        runs out, and the takeover bumps the attempt (fencing the dead worker out). A job that has used up
        its attempts is failed instead of taken.
        """
        if max_jobs <= 0:
            return []
        async with self.engine.begin() as conn:
            providers = sorted((await conn.execute(_PROVIDERS_WITH_WORK, {"only_id": only_id})).scalars())
            if not providers:
                return []
            await conn.execute(_LOCK_PROVIDERS, {"providers": providers})
            limits = [self.limits.get(p, 1) for p in providers]
            candidates = (
                await conn.execute(
                    _CANDIDATES,
                    {"providers": providers, "limits": limits, "only_id": only_id, "max_jobs": max_jobs},
                )
            ).all()
            exhausted = [row.id for row in candidates if row.exhausted]
            if exhausted:
                await conn.execute(
                    _FAIL_EXHAUSTED,
                    {"ids": exhausted, "message": "the worker running the last attempt stopped responding"},
                )
            ids = [row.id for row in candidates if not row.exhausted]
            if not ids:
                return []
            rows = (await conn.execute(_TAKE, {"ids": ids, "owner": owner, "lease": self.lease_sec})).all()
        claimed = [JobRecord.from_row(row) for row in rows]
        claimed.sort(key=lambda job: ids.index(job.id))  # arrival order, as chosen
        return claimed

    # ---- while running -------------------------------------------------------------------------------

    async def heartbeat(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Extend the lease; False means this attempt no longer holds the job (taken over or finished)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease),"
                        " updated_at = now()"
                        " WHERE id = :id AND attempt = :attempt AND status = 'running' RETURNING id"
                    ),
                    {"id": job_id, "attempt": attempt, "lease": self.lease_sec},
                )
            ).one_or_none()
        return row is not None

    # ---- finishing -----------------------------------------------------------------------------------

    async def complete(
        self, job_id: uuid.UUID, attempt: int, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> bool:
        """Record success, fenced by attempt number: a stale attempt changes nothing and gets False.
        The job update, the result's media row and the NOTIFY are one statement."""
        params = {"id": job_id, "attempt": attempt, **completion_params(result, result_expires_at, cost)}
        async with self.db.connect() as conn:
            row = (await conn.execute(_COMPLETE, params)).one_or_none()
        return row is not None

    async def fail_attempt(
        self,
        job_id: uuid.UUID,
        attempt: int,
        code: str,
        message: str,
        retryable: bool,
        retry_in: float | None,
    ) -> str | None:
        """Record a failed attempt. With `retry_in` the job is requeued to run after that many seconds,
        otherwise it fails for good. Returns the new status, or None if this attempt was stale."""
        entry = attempt_error(attempt, code, message, retryable)
        async with self.db.connect() as conn:
            if retry_in is None:
                return "failed" if await self._fail(conn, job_id, attempt, code, message, entry) else None
            row = (
                await conn.execute(
                    _REQUEUE,
                    {
                        "id": job_id,
                        "attempt": attempt,
                        "delay": retry_in,
                        "code": code,
                        "message": message,
                        "entry": [entry],
                    },
                )
            ).one_or_none()
        return "queued" if row is not None else None

    @staticmethod
    async def _fail(
        conn: AsyncConnection, job_id: uuid.UUID, attempt: int, code: str, message: str, entry: dict[str, Any]
    ) -> bool:
        row = (
            await conn.execute(
                _FAIL, {"id": job_id, "attempt": attempt, "code": code, "message": message, "entry": [entry]}
            )
        ).one_or_none()
        return row is not None

    # ---- reading -------------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> JobRecord | None:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :id"), {"id": job_id})
            ).one_or_none()
        return JobRecord.from_row(row) if row else None

    async def ended_among(self, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Which of these jobs have reached a terminal state (the per-process fallback poll)."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                text("SELECT id FROM jobs WHERE id = ANY(:ids) AND status IN ('succeeded', 'failed', 'cancelled')"),
                {"ids": job_ids},
            )
            return list(rows.scalars())

    async def next_run_after(self) -> datetime | None:
        """When the earliest delayed retry becomes claimable (lets an idle worker sleep exactly that long)."""
        async with self.db.connect() as conn:
            return (await conn.execute(text("SELECT min(run_after) FROM jobs WHERE status = 'queued'"))).scalar()


def attempt_error(attempt: int, code: str, message: str, retryable: bool) -> dict[str, Any]:
    """One entry of `jobs.attempt_errors`."""
    return {
        "attempt": attempt,
        "code": code,
        "message": message,
        "retryable": retryable,
        "at": datetime.now(UTC).isoformat(),
    }
