"""The job queue's SQL, each statement commented with why it is shaped so (used by `queue` and `callbacks`).

Channels: `bb_job_new` (payload: job id) when work becomes claimable, `bb_job_done` (payload: job id) when a
job reaches a terminal state. NOTIFY runs inside the statement that changes the row, so listeners are told only
after the change is visible.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from boothbridge.jobs.model import JOB_COLUMNS
from boothbridge.media.service import MediaRef

CHANNEL_NEW = "bb_job_new"
CHANNEL_DONE = "bb_job_done"

# Claimable: queued work whose time has come, and running work whose lease ran out (its worker died or hung).
_CLAIMABLE = "((status = 'queued' AND run_after <= now()) OR (status = 'running' AND lease_expires_at <= now()))"

# Which providers have claimable work (optionally: only the one job a Lambda worker was invoked for).
PROVIDERS_WITH_WORK = text(
    f"SELECT DISTINCT provider_id FROM jobs WHERE {_CLAIMABLE} AND (CAST(:only_id AS uuid) IS NULL OR id = :only_id)"
)

# Serialises capacity decisions for one provider across all claimers (every process, every host): without it two
# claimers could both count one free place and both take it. Transaction-scoped, so it cannot leak. Every claimer
# locks its providers in sorted order (unnest yields the sorted array in order), so claimers wait for each other
# but can never deadlock.
LOCK_PROVIDERS = text(
    "SELECT pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(p))"
    " FROM unnest(CAST(:providers AS text[])) AS p"
)

# Under those locks: each provider's free places (its limit minus running jobs whose lease is valid), then the
# oldest claimable jobs, at most `free` of each provider (so one provider's backlog never hides another's work),
# in arrival order across providers. `exhausted` marks a dead worker's job that has no attempts left.
CANDIDATES = text(
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
TAKE = text(
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
FAIL_EXHAUSTED = text(
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
ENQUEUE = text(
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
COMPLETE = completion_statement("id = :id AND attempt = :attempt AND status = 'running'")
FAIL = failure_statement("id = :id AND attempt = :attempt AND status IN ('running', 'queued')")

# A retry: back to the queue after a delay, the error recorded; claimers are told (a delayed job is picked up by
# their timers or fallback poll). Fenced like completion.
REQUEUE = text(
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


def attempt_error(attempt: int, code: str, message: str, retryable: bool) -> dict[str, Any]:
    """One entry of `jobs.attempt_errors`."""
    return {
        "attempt": attempt,
        "code": code,
        "message": message,
        "retryable": retryable,
        "at": datetime.now(UTC).isoformat(),
    }
