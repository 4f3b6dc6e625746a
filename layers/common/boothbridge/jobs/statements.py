"""Every SQL statement on the `jobs` table, each commented with why it is shaped so. In sections: the claim, ingest,
running and finishing, providers that answer later, cancel, the operator's reads, cleanup and metrics, the
processing log, statistics. (Python rather than a `.sql` file: the statements share composed parts, such as the
lease-lapse condition, the column lists and the status sets, that a flat file of queries could only repeat.)

One placeholder style, psycopg's `%(name)s` (so a literal `%` is written `%%`), whichever connection runs it:
- the queue's statements (claim, lease, completion, callbacks, ingest's, the processing log's) run on plain psycopg
  (`boothbridge.db.raw`, the hot path's pool); JSONB parameters are passed wrapped in `psycopg.types.json.Jsonb`;
- the operator side's (job list and detail, cancel, cleanup, metrics, statistics) run on the SQLAlchemy engine its
  callers already hold, through `conn.exec_driver_sql(statement, params)`: the driver underneath is psycopg, so
  the text reaches it unchanged and the hot path's pool is not used for operator traffic.

Job statuses come from `JobStatus`: a set is rendered once, at import time, as a literal list (`sql_list`), and a
single status is written as a literal (the partial indexes' predicates are literals, and a query uses such an
index only when its condition visibly implies the predicate). A unit test checks every status in these texts.

Channels: `bb_job_new` (payload: job id) when work becomes claimable, `bb_job_done` (payload: job id) when a
job reaches a terminal state. NOTIFY runs inside the statement that changes the row, so listeners are told only
after the change is visible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString, cast

from psycopg.types.json import Jsonb

from boothbridge.db.raw import retry_safe
from boothbridge.jobs.model import JOB_COLUMNS, job_columns
from boothbridge.jobs.status import JobStatus, sql_list
from boothbridge.media.ref import MediaRef, media_columns

CHANNEL_NEW = "bb_job_new"
CHANNEL_DONE = "bb_job_done"

_TERMINAL = sql_list(JobStatus.TERMINAL)
_ACTIVE = sql_list(JobStatus.ACTIVE)
_WORKER_SIDE = sql_list(JobStatus.WORKER_SIDE)
_IN_FLIGHT = sql_list(JobStatus.IN_FLIGHT)


def _sql(text: str) -> LiteralString:
    """A statement as psycopg's typing wants it. Every statement here is composed only from literal text and this
    module's own constants (column lists, channel names, JobStatus values), never from input; the f-strings that
    compose them hide that from a type checker, so it is asserted here, once. (mypy treats LiteralString as str and
    calls the cast redundant; pyright, which checks LiteralString, needs it.)"""
    return cast(LiteralString, text)  # type: ignore[redundant-cast]


def _retry_safe(text: str) -> LiteralString:
    """`_sql`, registered as safe to run again after a connection-level failure (`db.raw.retry_safe`)."""
    return retry_safe(_sql(text))


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


# ---- claim: one call of the database function boothbridge_claim (CLAIM; the function: CLAIM_FUNCTION) ---------
#
# A claim is two statements in one transaction, and the function runs them server-side, so a claim is one short
# statement and one round trip, and a provider's lock is held only while the server works (never while a client
# is away). In a VOLATILE PL/pgSQL function every statement takes a new snapshot, which the second one needs.
# The statements are written below with psycopg placeholders (`%(name)s`) and rendered into the function with
# its parameters (`p_name`); migration 0009 holds the rendered text, and a unit test fails when it drifts.
#
# First, which providers have claimable work (or: the provider of the one job a Lambda worker was invoked for),
# each one locked. The lock serialises capacity decisions for one provider across all claimers (every process,
# every host): without it two claimers could both count one free place and both take it. Transaction-scoped, so
# it cannot leak. Every claimer locks its providers in sorted order, so claimers wait for each other but can never
# deadlock: the lock is a volatile call in the output list, which PostgreSQL evaluates after the ORDER BY sort.
# Cost does not grow with the backlog: the providers with queued jobs are found by a loose index scan (one seek
# per provider in jobs_queued_provider_idx, a recursive CTE, since PostgreSQL has no skip scan), lapsed leases
# through jobs_running_lease_idx (running jobs only), and `ready` (how many are claimable, as seen before the
# lock, counted only up to `enough`) tells the worker whether the claim left work behind (a provider at its
# limit): only then does a job ending in it need to wake its claim loop.


def _lock(candidates: str) -> str:
    """Lock the providers of `candidates` (a WITH list ending in `w`: rows of provider_id, ready), in order."""
    return f"""
    {candidates}
    SELECT provider_id, ready,
           pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(provider_id)) AS granted
    FROM w WHERE ready > 0
    ORDER BY provider_id"""


_LOCK_ANY = _lock(f"""
    WITH RECURSIVE queued_providers AS (
        (SELECT provider_id FROM jobs WHERE status = 'queued' ORDER BY provider_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.provider_id FROM jobs j WHERE j.status = 'queued' AND j.provider_id > q.provider_id
                ORDER BY j.provider_id LIMIT 1)
        FROM queued_providers q WHERE q.provider_id IS NOT NULL
    ), candidates AS (
        SELECT provider_id FROM queued_providers WHERE provider_id IS NOT NULL
        UNION
        SELECT provider_id FROM jobs WHERE status = 'running' AND {_lapsed()}
    ), w AS (
        SELECT c.provider_id,
               (SELECT count(*) FROM (
                    SELECT 1 FROM jobs q
                    WHERE q.status = 'queued' AND q.provider_id = c.provider_id AND q.run_after <= now()
                    LIMIT %(enough)s) AS queued_ready)
             + (SELECT count(*) FROM (
                    SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.provider_id = c.provider_id AND {_lapsed("r")}
                    LIMIT %(enough)s) AS lapsed_ready) AS ready
        FROM candidates c
    )""")

_LOCK_ONE = _lock(f"""
    WITH w AS (SELECT provider_id, 1 AS ready FROM jobs WHERE id = %(only_id)s AND {_claimable()})""")

# Then, under those locks (`%(locked)s`), in one statement (a new snapshot: it sees every commit made before the
# locks were granted):
# - `cap`: each locked provider with its free places: its limit (from the parallel arrays `providers`, `limits`:
#   every provider the worker knows; any other gets `default_limit`) minus running jobs whose lease is valid;
# - `candidates`: per provider, its oldest ready queued jobs and its oldest lapsed running ones, each read with a
#   LIMITed index scan (at most its free places and at most `max_jobs`), so a claim reads a few rows whatever
#   the backlog; `exhausted` marks a job whose lease has now run out more often than `max_expiries` allows
#   (workers keep dying on it);
# - `chosen`: of those, at most `free` of each provider (so one provider's backlog never hides another's work),
#   at most `max_jobs` in all, in arrival order across providers;
# - `failed`: those exhausted jobs fail instead of being taken. Their waiters are woken by the pg_notify in the
#   RETURNING list: a data-modifying CTE always runs to completion, RETURNING included, even though the main
#   query does not read it;
# - `picked`: the others, locked FOR UPDATE SKIP LOCKED: a row another transaction holds (a cancel, a cleanup)
#   is left for later rather than waited for, and the claimable condition is re-checked on the locked row;
# - `taken`: the new attempt. Its number is the fencing token: whoever held the previous attempt can no longer
#   heartbeat, complete or fail it. Taking over a lapsed lease counts a lease expiry (recorded in
#   `attempt_errors`) and gives the job its attempt back (`max_attempts` + 1): a worker that died is not a
#   provider failure, and provider failures keep their own limit. The step's clock starts at its first claim
#   (`step_started_at`, cleared when the job moves to another step); the phase of an earlier attempt
#   (`uploading_image`) does not describe this one.


def _take(only: str) -> str:
    return f"""
    WITH cap AS (
        SELECT p.provider_id,
               coalesce(l.max_parallel, %(default_limit)s)
               - (SELECT count(*) FROM jobs r
                  WHERE r.provider_id = p.provider_id AND r.status = 'running' AND NOT {_lapsed("r")}) AS free
        FROM unnest(%(locked)s::text[]) AS p(provider_id)
        LEFT JOIN unnest(%(providers)s::text[], %(limits)s::int[]) AS l(provider_id, max_parallel)
            USING (provider_id)
    ), candidates AS (
        SELECT c.provider_id, c.free, q.id, q.run_after, q.created_at, false AS exhausted
        FROM cap c CROSS JOIN LATERAL (
            SELECT j.id, j.run_after, j.created_at FROM jobs j
            WHERE j.status = 'queued' AND j.provider_id = c.provider_id AND j.run_after <= now()
              {only}
            ORDER BY j.run_after, j.created_at
            LIMIT greatest(least(c.free, %(max_jobs)s), 0)
        ) AS q
        WHERE c.free > 0
        UNION ALL
        SELECT c.provider_id, c.free, r.id, r.run_after, r.created_at, r.lease_expiries >= %(max_expiries)s
        FROM cap c CROSS JOIN LATERAL (
            SELECT j.id, j.run_after, j.created_at, j.lease_expiries FROM jobs j
            WHERE j.status = 'running' AND j.provider_id = c.provider_id AND {_lapsed("j")}
              {only}
            ORDER BY j.run_after, j.created_at
            LIMIT greatest(least(c.free, %(max_jobs)s), 0)
        ) AS r
        WHERE c.free > 0
    ), ranked AS (
        SELECT id, run_after, created_at, free, exhausted,
               row_number() OVER (PARTITION BY provider_id ORDER BY run_after, created_at) AS place
        FROM candidates
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
            step_started_at = coalesce(step_started_at, now()), phase = NULL, updated_at = now(),
            lease_expiries = lease_expiries + (jobs.status = 'running')::int,
            max_attempts = max_attempts + (jobs.status = 'running')::int,
            attempt_errors = CASE WHEN jobs.status = 'running'
                THEN attempt_errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'code', 'lease_expired', 'message', %(taken_message)s::text,
                    'retryable', true, 'at', now()))
                ELSE attempt_errors END
        FROM picked WHERE jobs.id = picked.id
        RETURNING jobs.*
    )
    SELECT * FROM taken"""


def _in_function(statement: str) -> str:
    """A statement above as the function's body runs it: each `%(name)s` becomes the parameter `p_name`."""
    return re.sub(r"%\((\w+)\)s", r"p_\1", statement).replace("%%", "%").strip()


# The function: the lock (its providers kept in `p_locked`, what was ready in a transaction-local setting the
# calling statement reads), then the take; the one-job claim has statements of its own (so each is planned for
# its own access path). Returns the jobs taken, in no particular order; ROWS: a claim takes a few (the planner's
# default guess, 1000, made the calling statement hash the whole media table instead of looking each photo up).
_CLAIM_PARAMETERS = (
    "p_owner text, p_mine uuid[], p_lease double precision, p_providers text[], p_limits integer[],"
    " p_default_limit integer, p_max_jobs integer, p_enough integer, p_max_expiries integer, p_message text,"
    " p_taken_message text, p_only_id uuid"
)
CLAIM_READY_SETTING = "boothbridge.claim_ready"
CLAIM_FUNCTION = f"""CREATE OR REPLACE FUNCTION boothbridge_claim({_CLAIM_PARAMETERS})
RETURNS SETOF jobs LANGUAGE plpgsql VOLATILE ROWS 16 AS $claim$
DECLARE
    p_locked text[];
    v_ready jsonb;
BEGIN
    IF p_only_id IS NULL THEN
        SELECT array_agg(l.provider_id ORDER BY l.provider_id), jsonb_object_agg(l.provider_id, l.ready)
        INTO p_locked, v_ready
        FROM ({_in_function(_LOCK_ANY)}
        ) AS l;
    ELSE
        SELECT array_agg(l.provider_id ORDER BY l.provider_id), jsonb_object_agg(l.provider_id, l.ready)
        INTO p_locked, v_ready
        FROM ({_in_function(_LOCK_ONE)}
        ) AS l;
    END IF;
    PERFORM set_config('{CLAIM_READY_SETTING}', coalesce(v_ready, '{{}}'::jsonb)::text, true);
    IF p_locked IS NULL THEN
        RETURN;
    END IF;
    IF p_only_id IS NULL THEN
        RETURN QUERY {_in_function(_take(""))};
    ELSE
        RETURN QUERY {_in_function(_take("AND j.id = %(only_id)s"))};
    END IF;
END
$claim$"""
# Written out without blank lines or trailing blanks (as migration 0009 holds it).
CLAIM_FUNCTION = "\n".join(line.rstrip() for line in CLAIM_FUNCTION.splitlines() if line.strip())

# The claim as the worker runs it: the function's jobs, each with its source photo's media row when that is still
# live (so the worker needs no second read before it fetches the bytes), in arrival order, and what was ready per
# provider (`ready`, a JSON object). Always at least one row: with nothing taken, one whose job columns are NULL.
# The media join reads this statement's snapshot, taken before the function's own: a job enqueued while the claim
# ran (it waited for a provider's lock) comes without its photo's row, and the runner reads that row by id.
CLAIM = _sql(f"""
    SELECT {job_columns("t")}, {media_columns("m")}, current_setting('{CLAIM_READY_SETTING}') AS ready
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL boothbridge_claim(
        %(owner)s, %(mine)s::uuid[], %(lease)s::float8, %(providers)s::text[], %(limits)s::int[],
        %(default_limit)s::int, %(max_jobs)s::int, %(enough)s::int, %(max_expiries)s::int, %(message)s::text,
        %(taken_message)s::text, %(only_id)s::uuid) AS t ON true
    LEFT JOIN media_objects m ON m.id = t.source_media_id AND (m.expires_at IS NULL OR m.expires_at > now())
    ORDER BY t.run_after, t.created_at
    """)

# ---- ingest ------------------------------------------------------------------------------------------------

# Before a new photo is stored, one round trip answers both questions ingest asks, and always returns one row:
# - the job a re-post of the same photo on the same slot should attach to instead of paying twice (columns NULL
#   when there is none; never for a test run, `reuse` false): one still in flight first, else the newest that
#   succeeded and whose result has not expired, with that result's media row (so it is answered at once);
# - `depth`: the provider's backlog (queued and running booth jobs), for back-pressure. A caller that attaches
#   ignores it, so a re-post is answered even when the provider is full.
# A read: retried on a fresh connection when the database blinks (`retry_safe`).
ADMIT = _retry_safe(f"""
    SELECT r.*,
           (SELECT count(*) FROM jobs
            WHERE provider_id = %(provider)s AND status IN {_WORKER_SIDE} AND NOT is_test) AS depth
    FROM (SELECT 1) AS one
    LEFT JOIN (
        SELECT {job_columns("j")}, {media_columns("m")} FROM jobs j
        LEFT JOIN media_objects m ON m.id = j.result_media_id
        WHERE %(reuse)s AND j.slot_id = %(slot)s AND j.source_sha256 = %(sha)s AND j.is_test = false
          AND (j.status IN {_ACTIVE}
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
ENQUEUE = _retry_safe(f"""
    WITH job AS (
        INSERT INTO jobs (id, slot_id, status, provider_id, operation_id, settings_json, pipeline, source_media_id,
                          source_sha256, max_attempts, deadline_at, booth_fallback_at, request_meta, is_test)
        VALUES (%(id)s, %(slot)s, 'queued', %(provider)s, %(operation)s, %(settings)s, %(pipeline)s, %(source)s,
                %(sha)s, %(max_attempts)s, %(deadline)s, %(fallback_at)s, %(meta)s, %(is_test)s)
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
READ = _retry_safe(f"""
    SELECT {job_columns("j")}, {media_columns("m")}
    FROM jobs j
    LEFT JOIN media_objects m ON m.id = j.result_media_id AND (m.expires_at IS NULL OR m.expires_at > now())
    WHERE j.id = %(id)s
    """)

# ---- while running and finishing ---------------------------------------------------------------------------

# Extends the lease; fenced by attempt number only, not by the lease being still valid: after an outage of ours
# the worker that still runs the attempt re-asserts the lease it could not extend, unless somebody took the job
# (a new attempt number) or it ended (cancelled, finished). No row: "not yours any more".
HEARTBEAT = _sql("""
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s), updated_at = now()
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running' RETURNING id
    """)

# A stopping worker hands back an attempt it cannot finish (the provider call cancelled, nothing stored): queued
# at once and its attempt number restored, so no attempt is spent and the next claim (any worker: claimers are
# told) starts it again as the same attempt. Fenced by attempt and holder: only the attempt's own worker hands it
# back, and once handed back that attempt can no longer heartbeat, complete or fail it (the row is queued under
# attempt - 1; after the next claim the queue refuses the handed-back attempt in this process).
HAND_BACK = _sql(f"""
    WITH handed AS (
        UPDATE jobs
        SET status = 'queued', attempt = attempt - 1, run_after = now(), lease_owner = NULL,
            lease_expires_at = NULL, updated_at = now()
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
          AND lease_owner IS NOT DISTINCT FROM %(owner)s
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM handed
    """)


def completion_statement(fence: str) -> LiteralString:
    """One statement: fenced success, the result's media row, and the NOTIFY to waiters; it returns the job as
    it now stands (a waiter in this process is handed that and needs no read). `fence` decides who may finish
    the job; a caller it does not match changes nothing, inserts no media row and notifies nobody. The job's cost
    is what its earlier steps cost (recorded as it moved on) plus this last call's."""
    return _sql(f"""
        WITH done AS (
            UPDATE jobs
            SET status = 'succeeded', result_media_id = %(result)s, cost = coalesce(jobs.cost, 0) + %(cost)s,
                finished_at = now(),
                updated_at = now(), lease_owner = NULL, lease_expires_at = NULL, error_code = NULL,
                error_message = NULL, phase = NULL
            WHERE {fence}
            RETURNING {JOB_COLUMNS}
        ), result AS (
            INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
            SELECT %(result)s, %(m_key)s, %(m_mime)s, %(m_size)s, %(m_sha)s, 'result', %(m_expires)s, done.id
            FROM done
        )
        SELECT done.*, pg_notify('{CHANNEL_DONE}', done.id::text) FROM done
        """)


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


def failure_statement(fence: str) -> LiteralString:
    """One statement: failing for good, the error recorded (`entry`: a JSONB array of one attempt error), the
    waiters woken; `fence` as for completion."""
    return _sql(f"""
        WITH failed AS (
            UPDATE jobs
            SET status = 'failed', error_code = %(code)s, error_message = %(message)s,
                attempt_errors = attempt_errors || %(entry)s, finished_at = now(), updated_at = now(),
                lease_owner = NULL, lease_expires_at = NULL
            WHERE {fence}
            RETURNING id
        )
        SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM failed
        """)


# Only the attempt holding the job may finish it.
COMPLETE = completion_statement("id = %(id)s AND attempt = %(attempt)s AND status = 'running'")
FAIL = failure_statement(f"id = %(id)s AND attempt = %(attempt)s AND status IN {_WORKER_SIDE}")

# Many attempts' completions in one statement (`jobs.completions`: one round trip, one commit), each fenced like
# COMPLETE by its own attempt: an input row whose attempt no longer holds its job changes nothing, inserts no
# media row and notifies nobody. The input arrays are parallel, one element per completion, at most one per job.
# Returns the jobs completed, as COMPLETE does.
COMPLETE_MANY = _sql(f"""
    WITH input AS (
        SELECT * FROM unnest(%(ids)s::uuid[], %(attempts)s::int[], %(results)s::uuid[], %(costs)s::numeric[],
                             %(m_keys)s::text[], %(m_mimes)s::text[], %(m_sizes)s::bigint[], %(m_shas)s::text[],
                             %(m_expires)s::timestamptz[])
            AS i(id, attempt, result, cost, m_key, m_mime, m_size, m_sha, m_expires)
    ), done AS (
        UPDATE jobs
        SET status = 'succeeded', result_media_id = i.result, cost = coalesce(jobs.cost, 0) + i.cost,
            finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL, error_code = NULL,
            error_message = NULL, phase = NULL
        FROM input i
        WHERE jobs.id = i.id AND jobs.attempt = i.attempt AND jobs.status = 'running'
        RETURNING {job_columns("jobs")}
    ), result AS (
        INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
        SELECT i.result, i.m_key, i.m_mime, i.m_size, i.m_sha, 'result', i.m_expires, done.id
        FROM done JOIN input i ON i.id = done.id
    )
    SELECT done.*, pg_notify('{CHANNEL_DONE}', done.id::text) FROM done
    """)


def complete_many_params(group: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """COMPLETE_MANY's parallel arrays from COMPLETE's parameters, one mapping per completion."""
    columns = {
        "ids": "id",
        "attempts": "attempt",
        "results": "result",
        "costs": "cost",
        "m_keys": "m_key",
        "m_mimes": "m_mime",
        "m_sizes": "m_size",
        "m_shas": "m_sha",
        "m_expires": "m_expires",
    }
    return {array: [params[name] for params in group] for array, name in columns.items()}


# A retry: back to the queue after a delay, the error recorded; claimers are told (a delayed job is picked up by
# their timers or fallback poll). Fenced like completion.
REQUEUE = _sql(f"""
    WITH requeued AS (
        UPDATE jobs
        SET status = 'queued', run_after = now() + make_interval(secs => %(delay)s), lease_owner = NULL,
            lease_expires_at = NULL, error_code = %(code)s, error_message = %(message)s,
            attempt_errors = attempt_errors || %(entry)s, updated_at = now()
        WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM requeued
    """)

ENDED_AMONG = _sql(f"SELECT id FROM jobs WHERE id = ANY(%(ids)s) AND status IN {_TERMINAL}")


# ---- providers that answer later (webhook) -------------------------------------------------------------------

# Before the provider is called: its callback may arrive before the attempt even returns.
ARM = _sql(
    "UPDATE jobs SET webhook_token_hash = %(hash)s, updated_at = now()"
    " WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running' RETURNING id"
)

# The provider took the work and will call back: no lease (nobody is running it here); `lease_expires_at` now
# bounds the wait, after which cleanup fails the job.
PARK = _sql("""
    UPDATE jobs
    SET status = 'waiting_provider', provider_ref = %(ref)s, lease_owner = NULL,
        lease_expires_at = now() + make_interval(secs => %(wait)s), updated_at = now()
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
    RETURNING id
    """)

CALLBACK_TARGET = _sql("SELECT status, provider_id, webhook_token_hash FROM jobs WHERE id = %(id)s")

# Completion (or failure) by callback, fenced by the secret (only the attempt that armed it can be finished by
# it) and by status (a duplicate delivery finds the job already finished and changes nothing).
_CALLBACK_FENCE = f"id = %(id)s AND webhook_token_hash = %(hash)s AND status IN {_IN_FLIGHT}"
COMPLETE_BY_CALLBACK = completion_statement(_CALLBACK_FENCE)
FAIL_BY_CALLBACK = failure_statement(_CALLBACK_FENCE)

# A delivery that reported a failure another attempt may cure (a result that could not be fetched or decoded):
# back to the queue, fenced like completion; the secret is spent, so a repeated delivery changes nothing more.
# A provider that can resume its work (`%(resumable)s`, `callbacks.RESUMABLE_PROVIDERS`: fal) keeps its
# `provider_ref`, so the next attempt fetches that request's result instead of submitting (paying) again; any other
# provider's ref is cleared (Turbotext's result link is one-shot: its next attempt submits anew).
REQUEUE_BY_CALLBACK = _sql(f"""
    WITH requeued AS (
        UPDATE jobs
        SET status = 'queued', run_after = now() + make_interval(secs => %(delay)s), lease_owner = NULL,
            lease_expires_at = NULL, webhook_token_hash = NULL,
            provider_ref = CASE WHEN provider_id = ANY(%(resumable)s) THEN provider_ref END, error_code = %(code)s,
            error_message = %(message)s, attempt_errors = attempt_errors || %(entry)s, updated_at = now()
        WHERE {_CALLBACK_FENCE}
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM requeued
    """)

# Parked jobs whose provider never called back in time.
FAIL_ABANDONED = _sql(f"""
    WITH failed AS (
        UPDATE jobs
        SET status = 'failed', error_code = 'provider_no_callback',
            error_message = 'the provider did not deliver the result in time', finished_at = now(),
            updated_at = now(), lease_expires_at = NULL
        WHERE status = 'waiting_provider' AND lease_expires_at <= now()
        RETURNING id
    )
    SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM failed
    """)

# ---- the operator's cancel (`jobs.cancel`) -------------------------------------------------------------------


# Ownership (the job's slot belongs to the operator), the fenced update and the NOTIFY in one statement.
# The fence is the status: the UPDATE re-checks it on the newest row version, so a cancel racing a worker's
# completion either wins (the completion then changes nothing) or finds the job finished and changes nothing.
# A running or parked attempt is recorded in `attempt_errors` as ended by the cancel (who cancelled is kept).
def cancel_statement(owned: str) -> LiteralString:
    """The cancel of a job that `owned` (a SELECT of the job's id and status, empty when the caller does not own
    it) finds."""
    return _sql(f"""
    WITH owned AS ({owned}), cancelled AS (
        UPDATE jobs
        SET status = 'cancelled', error_code = 'cancelled', error_message = %(message)s,
            attempt_errors = CASE WHEN status IN {_IN_FLIGHT}
                THEN attempt_errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'code', 'cancelled', 'message', CAST(%(message)s AS text),
                    'retryable', false, 'at', now()))
                ELSE attempt_errors END,
            finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE id IN (SELECT id FROM owned) AND status IN {_ACTIVE}
        RETURNING id
    )
    SELECT c.id IS NOT NULL AS cancelled,
           CASE WHEN c.id IS NOT NULL THEN pg_notify('{CHANNEL_DONE}', c.id::text) END AS notified
    FROM owned o LEFT JOIN cancelled c ON c.id = o.id
    """)


CANCEL = cancel_statement(
    "SELECT j.id, j.status FROM jobs j JOIN slots s ON s.id = j.slot_id WHERE j.id = %(id)s AND s.user_id = %(uid)s"
)
# A machine client's task (issue 15): its operator's (`uid`), of kind task.
CANCEL_TASK = cancel_statement(
    "SELECT j.id, j.status FROM jobs j WHERE j.id = %(id)s AND j.kind = 'task' AND j.owner_id = %(uid)s"
)

STATUS = _sql("SELECT status FROM jobs WHERE id = %(id)s")

# ---- the operator's read-model (`jobs.view`): its statements are in `boothbridge.jobs.view_statements` -----

# ---- cleanup and metrics (`platform`) ------------------------------------------------------------------------

# Work no worker has picked up: queued for a while past its time, or running under a lease that ran out (its
# worker died). Listening workers find these by themselves; on AWS nobody listens, so cleanup re-invokes.
STALE_JOBS = _sql("""
    SELECT id FROM jobs
    WHERE (status = 'queued' AND run_after <= now() - make_interval(secs => %(grace)s))
       OR (status = 'running' AND lease_expires_at <= now())
    ORDER BY run_after
    LIMIT %(batch)s
    """)

# The Prometheus figures in one statement: booth requests by outcome and their latency histogram (`buckets`: the
# upper bounds in ms) from processing_log, the queue's depth and jobs in flight per provider, and attempt errors
# per provider and code.
METRICS = _sql(f"""
    SELECT
      (SELECT coalesce(jsonb_object_agg(status, n), '{{}}') FROM
         (SELECT status, count(*) AS n FROM processing_log WHERE NOT is_test GROUP BY status) s) AS ingest_by_status,
      (SELECT jsonb_build_object('count', count(*), 'sum', coalesce(sum(response_time_ms), 0),
                                 'buckets', (SELECT jsonb_agg(n ORDER BY b) FROM (
                                     SELECT b, count(p.id) FILTER (WHERE p.response_time_ms <= b) AS n
                                     FROM unnest(CAST(%(buckets)s AS int[])) AS b
                                     CROSS JOIN (SELECT id, response_time_ms FROM processing_log WHERE NOT is_test) p
                                     GROUP BY b) x))
         FROM processing_log WHERE NOT is_test) AS latency,
      (SELECT coalesce(jsonb_object_agg(provider_id, n), '{{}}') FROM
         (SELECT provider_id, count(*) AS n FROM jobs WHERE status = 'queued' GROUP BY provider_id) q) AS queued,
      (SELECT coalesce(jsonb_object_agg(provider_id, n), '{{}}') FROM
         (SELECT provider_id, count(*) AS n FROM jobs WHERE status IN {_IN_FLIGHT}
          GROUP BY provider_id) r) AS in_flight,
      (SELECT coalesce(jsonb_agg(jsonb_build_array(provider_id, code, n)), '[]') FROM
         (SELECT provider_id, e->>'code' AS code, count(*) AS n
          FROM jobs, jsonb_array_elements(attempt_errors) AS e GROUP BY provider_id, e->>'code') f) AS errors
    """)

# The processing log's statement (`LOG_REQUEST`) is in `boothbridge.ingest.statements`.

# ---- booth statistics (`boothbridge.stats.queries`, whose docstring defines the figures) -----------------------------

# The periods meeting [start, end): naive UTC timestamps stepped by a calendar interval.
_PERIODS = """
    periods AS (
        SELECT gs AS period_start
        FROM generate_series(date_trunc(%(unit)s, CAST(%(start)s AS timestamptz) AT TIME ZONE 'UTC'),
                             CAST(%(end)s AS timestamptz) AT TIME ZONE 'UTC' - interval '1 microsecond',
                             CAST(%(step)s AS interval)) AS gs
    )"""

# Per-period aggregates over the booth requests (`log`) and the jobs (`spend`) of the slots in `own`.
_BUCKETS = """
    requests AS (
        SELECT date_trunc(%(unit)s, l.created_at AT TIME ZONE 'UTC') AS period_start,
               count(*) FILTER (WHERE l.status = 'SUCCESS') AS success,
               count(*) FILTER (WHERE l.status = 'ERROR') AS errors,
               count(*) FILTER (WHERE l.status = 'TIMEOUT') AS timeouts,
               round(avg(l.response_time_ms)) AS avg_ms,
               round(CAST(percentile_cont(0.95) WITHIN GROUP (ORDER BY l.response_time_ms) AS numeric)) AS p95_ms
        FROM processing_log l JOIN own ON own.id = l.slot_id
        WHERE NOT l.is_test AND l.created_at >= %(start)s AND l.created_at < %(end)s
        GROUP BY 1
    ),
    spend AS (
        SELECT date_trunc(%(unit)s, j.created_at AT TIME ZONE 'UTC') AS period_start, sum(j.cost) AS cost
        FROM jobs j JOIN own ON own.id = j.slot_id
        WHERE NOT j.is_test AND j.created_at >= %(start)s AND j.created_at < %(end)s
        GROUP BY 1
    ),
    series AS (
        SELECT p.period_start,
               CAST(p.period_start + CAST(%(step)s AS interval) - interval '1 day' AS date) AS period_end,
               coalesce(r.success, 0) AS success, coalesce(r.errors, 0) AS errors,
               coalesce(r.timeouts, 0) AS timeouts, r.avg_ms, r.p95_ms, coalesce(s.cost, 0) AS cost
        FROM periods p
        LEFT JOIN requests r USING (period_start)
        LEFT JOIN spend s USING (period_start)
    )"""

STATS_SLOT_SERIES = _sql(f"""
    WITH own AS (SELECT id FROM slots WHERE id = %(slot)s AND user_id = %(uid)s),
    {_PERIODS},
    {_BUCKETS}
    SELECT * FROM series ORDER BY period_start
""")


def _global_series(order: str) -> LiteralString:
    """One statement answers a page and the total: the page is LEFT JOINed to the count, so a page past the end
    still returns one row carrying `total` (with NULL period columns). `order`: ties broken by period."""
    return _sql(f"""
    WITH own AS (
        SELECT id FROM slots
        WHERE user_id = %(uid)s
          AND (CAST(%(provider)s AS text) IS NULL OR provider_id = %(provider)s)
          AND (CAST(%(slot)s AS text) IS NULL OR id = %(slot)s)
    ),
    {_PERIODS},
    {_BUCKETS},
    page AS (SELECT * FROM series ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s)
    SELECT n.total, page.* FROM (SELECT count(*) AS total FROM periods) n LEFT JOIN page ON true
    ORDER BY {order}
""")


STATS_SORT_COLUMNS = ("period_start", "success", "errors", "cost")
# The global series by (sort column, "asc" | "desc"): every order the API offers, rendered here, so no text is
# composed from a request.
STATS_GLOBAL_SERIES: Mapping[tuple[str, str], LiteralString] = {
    (column, direction): _global_series(f"{column} {direction.upper()}, period_start {direction.upper()}")
    for column in STATS_SORT_COLUMNS
    for direction in ("asc", "desc")
}

# The stats page: each slot since its last reset, plus the operator's all-time processed count. Counts are the
# kept processing_log rows plus those the retention cleanup folded into processing_log_totals.
STATS_SUMMARY = _sql("""
    WITH own AS (SELECT id, name, settings_json, last_reset_at FROM slots WHERE user_id = %(uid)s),
    kept AS (
        SELECT l.slot_id,
               count(*) AS requests,
               count(*) FILTER (WHERE l.status = 'SUCCESS') AS processed,
               count(*) FILTER (WHERE l.status IN ('ERROR', 'TIMEOUT')) AS failed,
               round(CAST(percentile_cont(0.95) WITHIN GROUP (ORDER BY l.response_time_ms) AS numeric)) AS p95_ms
        FROM processing_log l JOIN own s ON s.id = l.slot_id
        WHERE NOT l.is_test AND l.created_at >= coalesce(s.last_reset_at, '-infinity')
        GROUP BY l.slot_id
    ),
    since_reset AS (
        SELECT s.id AS slot_id,
               coalesce(k.requests, 0) + coalesce(t.since_reset_requests, 0) AS requests,
               coalesce(k.processed, 0) + coalesce(t.since_reset_processed, 0) AS processed,
               coalesce(k.failed, 0) + coalesce(t.since_reset_failed, 0) AS failed,
               k.p95_ms
        FROM own s
        LEFT JOIN kept k ON k.slot_id = s.id
        LEFT JOIN processing_log_totals t ON t.slot_id = s.id
    ),
    -- The booth jobs each slot's money is counted from: those since its last reset.
    billed AS (
        SELECT j.id, j.slot_id, j.provider_id, j.cost, j.finished_at, j.created_at
        FROM jobs j JOIN own s ON s.id = j.slot_id
        WHERE NOT j.is_test AND j.created_at >= coalesce(s.last_reset_at, '-infinity')
    ),
    -- Each job's money by the provider whose call cost it: the pipeline steps it moved on from (`job_steps`), and
    -- the rest (its last call) under the job's own provider, which is that last call's.
    billed_parts AS (
        SELECT b.id, b.slot_id, st.provider_id, st.cost
        FROM billed b JOIN job_steps st ON st.job_id = b.id
        WHERE b.cost IS NOT NULL AND st.cost IS NOT NULL
        UNION ALL
        SELECT b.id, b.slot_id, b.provider_id,
               b.cost - coalesce((SELECT sum(st.cost) FROM job_steps st WHERE st.job_id = b.id), 0)
        FROM billed b WHERE b.cost IS NOT NULL
    ),
    -- whose price a job's cost mostly was (one provider for a one-step job)
    payer AS (
        SELECT DISTINCT ON (id) id, provider_id FROM billed_parts ORDER BY id, cost DESC, provider_id
    ),
    spend AS (
        SELECT b.slot_id, sum(b.cost) AS total_cost,
               -- the cost of the job that finished last (the latest AI processing), and whose price it was
               (array_agg(b.cost ORDER BY b.finished_at DESC NULLS LAST, b.created_at DESC)
                   FILTER (WHERE b.cost IS NOT NULL))[1] AS last_cost,
               (array_agg(p.provider_id ORDER BY b.finished_at DESC NULLS LAST, b.created_at DESC)
                   FILTER (WHERE b.cost IS NOT NULL))[1] AS last_cost_provider
        FROM billed b LEFT JOIN payer p ON p.id = b.id
        GROUP BY b.slot_id
    ),
    -- The same money per provider: a slot that changed providers since its reset, or whose steps use several,
    -- may have spent in two currencies, which one sum cannot show.
    spend_by_provider AS (
        SELECT slot_id, jsonb_object_agg(provider_id, cost) AS by_provider
        FROM (SELECT slot_id, provider_id, sum(cost) AS cost FROM billed_parts
              GROUP BY slot_id, provider_id) per_provider
        GROUP BY slot_id
    )
    SELECT s.id, s.name, s.last_reset_at,
           -- the slot's template image: its first `*_media_id` setting, by key name
           (SELECT e.value FROM jsonb_each_text(s.settings_json) e
             WHERE e.key LIKE '%%\\_media\\_id' AND e.value <> '' ORDER BY e.key LIMIT 1) AS template_media_id,
           coalesce(r.processed, 0) AS processed, coalesce(r.requests, 0) AS requests, r.p95_ms,
           round(100.0 * r.failed / nullif(r.requests, 0), 2) AS error_pct,
           m.last_cost, m.last_cost_provider, coalesce(m.total_cost, 0) AS total_cost, p.by_provider,
           (SELECT count(*) FROM processing_log l JOIN own o ON o.id = l.slot_id
             WHERE l.status = 'SUCCESS' AND NOT l.is_test)
           + (SELECT CAST(coalesce(sum(t.processed), 0) AS bigint)
                FROM processing_log_totals t JOIN own o ON o.id = t.slot_id)
             AS processed_all_time
    FROM own s
    LEFT JOIN since_reset r ON r.slot_id = s.id
    LEFT JOIN spend m ON m.slot_id = s.id
    LEFT JOIN spend_by_provider p ON p.slot_id = s.id
    ORDER BY s.id
""")


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
