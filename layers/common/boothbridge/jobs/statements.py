"""The job queue's SQL, each statement commented with why it is shaped so (used by `queue` and `callbacks`).

The statements run on plain psycopg (`boothbridge.db.raw`), hence the `%(name)s` placeholders; JSONB parameters
are passed wrapped in `psycopg.types.json.Jsonb`.

Channels: `bb_job_new` (payload: job id) when work becomes claimable, `bb_job_done` (payload: job id) when a
job reaches a terminal state. NOTIFY runs inside the statement that changes the row, so listeners are told only
after the change is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from boothbridge.db.raw import retry_safe
from boothbridge.jobs.model import JOB_COLUMNS, job_columns
from boothbridge.media.ref import MediaRef, media_columns

CHANNEL_NEW = "bb_job_new"
CHANNEL_DONE = "bb_job_done"


def _lapsed(alias: str = "") -> str:
    """A running job's lease has lapsed for the claimer (`%(owner)s`, `%(mine)s`, `%(lease)s`): it ran out, and
    - not while the database was away: a lease that ran out before the server (re)started is given one whole
      lease from the start, so its worker, alive and still calling the provider, can re-assert it (its heartbeat
      is fenced by attempt number only) before anybody calls the provider a second time;
    - the job is not one the claimer itself still runs (`mine`: the ids this process runs under this owner): a
      worker never takes over its own running attempt, whatever its lease says after an outage of ours."""
    t = f"{alias}." if alias else ""
    return (
        f"({t}lease_expires_at <= now()"
        f" AND ({t}lease_expires_at > pg_postmaster_start_time()"
        f" OR pg_postmaster_start_time() + make_interval(secs => %(lease)s) <= now())"
        f" AND NOT ({t}lease_owner IS NOT DISTINCT FROM %(owner)s AND {t}id = ANY(%(mine)s::uuid[])))"
    )


def _claimable(alias: str = "") -> str:
    """Claimable: queued work whose time has come, and running work whose lease lapsed (its worker died or hung;
    see `_lapsed`). `alias` qualifies the columns when the statement joins another table."""
    t = f"{alias}." if alias else ""
    return f"(({t}status = 'queued' AND {t}run_after <= now()) OR ({t}status = 'running' AND {_lapsed(alias)}))"


# ---- claim: BEGIN; LOCK_PROVIDERS_WITH_WORK; TAKE; COMMIT ------------------------------------------------------

# Which providers have claimable work (optionally: only the one job a Lambda worker was invoked for), each one
# locked. The lock serialises capacity decisions for one provider across all claimers (every process, every
# host): without it two claimers could both count one free place and both take it. Transaction-scoped, so it
# cannot leak. Every claimer locks its providers in sorted order, so claimers wait for each other but can never
# deadlock: the lock is a volatile call in the output list, which PostgreSQL evaluates after the ORDER BY sort.
# `ready` (how many are claimable, as seen before the lock) tells the worker whether the claim left work behind
# (a provider at its limit): only then does a job ending in it need to wake its claim loop.
LOCK_PROVIDERS_WITH_WORK = f"""
    SELECT w.provider_id, w.ready,
           pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(w.provider_id))
    FROM (
        SELECT provider_id, count(*) AS ready FROM jobs
        WHERE {_claimable()} AND (%(only_id)s::uuid IS NULL OR id = %(only_id)s)
        GROUP BY provider_id
    ) AS w
    ORDER BY w.provider_id
    """

# Under those locks, and in a new statement (so its snapshot sees every commit made before the locks were
# granted), in one statement:
# - `cap`: each locked provider's free places (its limit minus running jobs whose lease is valid);
# - `chosen`: the oldest claimable jobs, at most `free` of each provider (so one provider's backlog never hides
#   another's work), at most `max_jobs` in all, in arrival order across providers; `exhausted` marks a job
#   whose lease has now run out more often than `max_expiries` allows (workers keep dying on it);
# - `failed`: those exhausted jobs fail instead of being taken. Their waiters are woken by the pg_notify in the
#   RETURNING list: a data-modifying CTE always runs to completion, RETURNING included, even though the main
#   query does not read it;
# - `picked`: the others, locked FOR UPDATE SKIP LOCKED: a row another transaction holds (a cancel, a cleanup)
#   is left for later rather than waited for, and the claimable condition is re-checked on the locked row;
# - `taken`: the new attempt. Its number is the fencing token: whoever held the previous attempt can no longer
#   heartbeat, complete or fail it. Taking over a lapsed lease counts a lease expiry (recorded in
#   `attempt_errors`) and gives the job its attempt back (`max_attempts` + 1): a worker that died is not a
#   provider failure, and provider failures keep their own limit.
# The rows come back in arrival order, each with its source photo's media row when that is still live (so the
# worker needs no second read before it fetches the bytes).
TAKE = f"""
    WITH cap AS (
        SELECT p.provider_id,
               p.max_parallel - (SELECT count(*) FROM jobs r
                                 WHERE r.provider_id = p.provider_id AND r.status = 'running'
                                   AND NOT {_lapsed("r")}) AS free
        FROM unnest(%(providers)s::text[], %(limits)s::int[]) AS p(provider_id, max_parallel)
    ), ranked AS (
        SELECT j.id, j.run_after, j.created_at, c.free,
               (j.status = 'running' AND j.lease_expiries >= %(max_expiries)s) AS exhausted,
               row_number() OVER (PARTITION BY j.provider_id ORDER BY j.run_after, j.created_at) AS place
        FROM jobs j JOIN cap c USING (provider_id)
        WHERE c.free > 0
          AND {_claimable("j")}
          AND (%(only_id)s::uuid IS NULL OR j.id = %(only_id)s)
    ), chosen AS (
        SELECT id, exhausted FROM ranked WHERE place <= free ORDER BY run_after, created_at LIMIT %(max_jobs)s
    ), failed AS (
        UPDATE jobs
        SET status = 'failed', error_code = 'lease_expired', error_message = %(message)s,
            lease_expiries = lease_expiries + 1,
            attempt_errors = attempt_errors || jsonb_build_array(jsonb_build_object(
                'attempt', attempt, 'code', 'lease_expired', 'message', %(message)s::text, 'retryable', false,
                'at', now())),
            finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE id IN (SELECT id FROM chosen WHERE exhausted)
          AND status = 'running' AND {_lapsed()} AND lease_expiries >= %(max_expiries)s
        RETURNING id, pg_notify('{CHANNEL_DONE}', id::text)
    ), picked AS (
        SELECT id FROM jobs
        WHERE id IN (SELECT id FROM chosen WHERE NOT exhausted) AND {_claimable()}
        FOR UPDATE SKIP LOCKED
    ), taken AS (
        UPDATE jobs
        SET status = 'running', attempt = attempt + 1, lease_owner = %(owner)s,
            lease_expires_at = now() + make_interval(secs => %(lease)s), started_at = coalesce(started_at, now()),
            updated_at = now(),
            lease_expiries = lease_expiries + (jobs.status = 'running')::int,
            max_attempts = max_attempts + (jobs.status = 'running')::int,
            attempt_errors = CASE WHEN jobs.status = 'running'
                THEN attempt_errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'code', 'lease_expired', 'message', %(taken_message)s::text,
                    'retryable', true, 'at', now()))
                ELSE attempt_errors END
        FROM picked WHERE jobs.id = picked.id
        RETURNING {job_columns("jobs")}, jobs.run_after
    )
    SELECT {job_columns("t")}, {media_columns("m")}
    FROM taken t
    LEFT JOIN media_objects m ON m.id = t.source_media_id AND (m.expires_at IS NULL OR m.expires_at > now())
    ORDER BY t.run_after, t.created_at
    """

# ---- ingest ------------------------------------------------------------------------------------------------

# Before a new photo is stored, one round trip answers both questions ingest asks, and always returns one row:
# - the job a re-post of the same photo on the same slot should attach to instead of paying twice (columns NULL
#   when there is none; never for a test run, `reuse` false): one still in flight first, else the newest that
#   succeeded and whose result has not expired, with that result's media row (so it is answered at once);
# - `depth`: the provider's backlog (queued and running booth jobs), for back-pressure. A caller that attaches
#   ignores it, so a re-post is answered even when the provider is full.
# A read: retried on a fresh connection when the database blinks (`retry_safe`).
ADMIT = retry_safe(f"""
    SELECT r.*,
           (SELECT count(*) FROM jobs
            WHERE provider_id = %(provider)s AND status IN ('queued', 'running') AND NOT is_test) AS depth
    FROM (SELECT 1) AS one
    LEFT JOIN (
        SELECT {job_columns("j")}, {media_columns("m")} FROM jobs j
        LEFT JOIN media_objects m ON m.id = j.result_media_id
        WHERE %(reuse)s AND j.slot_id = %(slot)s AND j.source_sha256 = %(sha)s AND j.is_test = false
          AND (j.status IN ('queued', 'running', 'waiting_provider')
               OR (j.status = 'succeeded' AND m.id IS NOT NULL
                   AND (m.expires_at IS NULL OR m.expires_at > now())))
        ORDER BY (j.status <> 'succeeded'), j.created_at DESC
        LIMIT 1
    ) AS r ON true
    """)

# One statement: the job, its source media row (only if the job was inserted) and the NOTIFY. ON CONFLICT on the
# partial unique index is the retry-safety: a second identical photo on the slot while the first is in flight
# inserts nothing and returns no row. ON CONFLICT names no index, so a conflict on the job's id (this very
# statement run again after its answer was lost when the database blinked) inserts nothing either: running it
# twice inserts one job, one media row and sends one NOTIFY, hence `retry_safe`. A caller given no row tells
# the two apart by reading the job it tried to insert (its id is the caller's own).
ENQUEUE = retry_safe(f"""
    WITH job AS (
        INSERT INTO jobs (id, slot_id, status, provider_id, operation_id, settings_json, source_media_id,
                          source_sha256, max_attempts, deadline_at, booth_fallback_at, request_meta, is_test)
        VALUES (%(id)s, %(slot)s, 'queued', %(provider)s, %(operation)s, %(settings)s, %(source)s, %(sha)s,
                %(max_attempts)s, %(deadline)s, %(fallback_at)s, %(meta)s, %(is_test)s)
        ON CONFLICT DO NOTHING
        RETURNING {JOB_COLUMNS}
    ), source AS (
        INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
        SELECT %(source)s, %(m_key)s, %(m_mime)s, %(m_size)s, %(m_sha)s, 'source', %(m_expires)s, job.id FROM job
    )
    SELECT job.*, pg_notify('{CHANNEL_NEW}', job.id::text) FROM job
    """)

# A waiter's read: the job and, when it has one that is still live, its result's media row (the waiter streams
# those bytes next, so it needs no second read). A read: retried when the database blinks.
READ = retry_safe(f"""
    SELECT {job_columns("j")}, {media_columns("m")}
    FROM jobs j
    LEFT JOIN media_objects m ON m.id = j.result_media_id AND (m.expires_at IS NULL OR m.expires_at > now())
    WHERE j.id = %(id)s
    """)

# ---- while running and finishing ---------------------------------------------------------------------------

# Extends the lease; fenced by attempt number only, not by the lease being still valid: after an outage of ours
# the worker that still runs the attempt re-asserts the lease it could not extend, unless somebody took the job
# (a new attempt number) or it ended (cancelled, finished). No row: "not yours any more".
HEARTBEAT = """
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s), updated_at = now()
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running' RETURNING id
    """

# A stopping worker hands back an attempt it cannot finish (the provider call cancelled, nothing stored): queued
# at once and its attempt number restored, so no attempt is spent and the next claim (any worker: claimers are
# told) starts it again as the same attempt. Fenced by attempt and holder: only the attempt's own worker hands it
# back, and once handed back that attempt can no longer heartbeat, complete or fail it (the row is queued under
# attempt - 1; after the next claim the queue refuses the handed-back attempt in this process).
HAND_BACK = f"""
    WITH handed AS (
        UPDATE jobs
        SET status = 'queued', attempt = attempt - 1, run_after = now(), lease_owner = NULL,
            lease_expires_at = NULL, updated_at = now()
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
          AND lease_owner IS NOT DISTINCT FROM %(owner)s
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM handed
    """


def completion_statement(fence: str) -> str:
    """One statement: fenced success, the result's media row, and the NOTIFY to waiters; it returns the job as
    it now stands (a waiter in this process is handed that and needs no read). `fence` decides who may finish
    the job; a caller it does not match changes nothing, inserts no media row and notifies nobody."""
    return f"""
        WITH done AS (
            UPDATE jobs
            SET status = 'succeeded', result_media_id = %(result)s, cost = %(cost)s, finished_at = now(),
                updated_at = now(), lease_owner = NULL, lease_expires_at = NULL, error_code = NULL,
                error_message = NULL
            WHERE {fence}
            RETURNING {JOB_COLUMNS}
        ), result AS (
            INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
            SELECT %(result)s, %(m_key)s, %(m_mime)s, %(m_size)s, %(m_sha)s, 'result', %(m_expires)s, done.id
            FROM done
        )
        SELECT done.*, pg_notify('{CHANNEL_DONE}', done.id::text) FROM done
        """


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


def failure_statement(fence: str) -> str:
    """One statement: failing for good, the error recorded (`entry`: a JSONB array of one attempt error), the
    waiters woken; `fence` as for completion."""
    return f"""
        WITH failed AS (
            UPDATE jobs
            SET status = 'failed', error_code = %(code)s, error_message = %(message)s,
                attempt_errors = attempt_errors || %(entry)s, finished_at = now(), updated_at = now(),
                lease_owner = NULL, lease_expires_at = NULL
            WHERE {fence}
            RETURNING id
        )
        SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM failed
        """


# Only the attempt holding the job may finish it.
COMPLETE = completion_statement("id = %(id)s AND attempt = %(attempt)s AND status = 'running'")
FAIL = failure_statement("id = %(id)s AND attempt = %(attempt)s AND status IN ('running', 'queued')")

# A retry: back to the queue after a delay, the error recorded; claimers are told (a delayed job is picked up by
# their timers or fallback poll). Fenced like completion.
REQUEUE = f"""
    WITH requeued AS (
        UPDATE jobs
        SET status = 'queued', run_after = now() + make_interval(secs => %(delay)s), lease_owner = NULL,
            lease_expires_at = NULL, error_code = %(code)s, error_message = %(message)s,
            attempt_errors = attempt_errors || %(entry)s, updated_at = now()
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM requeued
    """

ENDED_AMONG = "SELECT id FROM jobs WHERE id = ANY(%(ids)s) AND status IN ('succeeded', 'failed', 'cancelled')"


def attempt_error(
    attempt: int, code: str, message: str, retryable: bool, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One entry of `jobs.attempt_errors`; `details` (retry hint, quota scope and reset) only when known."""
    entry = {
        "attempt": attempt,
        "code": code,
        "message": message,
        "retryable": retryable,
        "at": datetime.now(UTC).isoformat(),
    }
    if details:
        entry["details"] = dict(details)
    return entry


def attempt_errors_entry(
    attempt: int, code: str, message: str, retryable: bool, details: Mapping[str, Any] | None = None
) -> Jsonb:
    """`attempt_error` as the JSONB array of one that FAIL and REQUEUE append."""
    return Jsonb([attempt_error(attempt, code, message, retryable, details)])
