"""Every SQL statement that moves a job along its pipeline (`jobs.steps`), each commented with why it is shaped so.

A job's current step lives in its own row (`jobs.step_index`, `alternative`, `provider_id`, `operation_id`,
`settings_json`); a step it is done with is a `job_steps` row. Moving on is one statement: the fenced update of
the job, the record of the step it leaves, the media row of the step's output and the NOTIFY that wakes the
claimers, so a worker that dies at any point either moved the job (and the step is never run again) or did not
(and the step runs again under a new attempt, paying at most once more for that step alone).
"""

from __future__ import annotations

from typing import LiteralString

from boothbridge.jobs.statements import _CALLBACK_FENCE, CHANNEL_DONE, CHANNEL_NEW, _sql


def move_statement(fence: str) -> LiteralString:
    """The job leaves its current call for another (`to_step`, `to_alt`: the next step, or an alternative of the
    same step, or the step after a skipped one) and is queued at once for that call's provider.

    - The new call's provider, operation and settings become the job's columns: the claim finds it per provider.
    - `output` (the image the step made, or NULL when the input carries on) becomes the next input, with its media
      row (`m_*`, kind `result`: kept like a result, so a job taken over later still finds it).
    - The new call counts its own attempts: `step_attempt_base` is the attempt number it starts after and
      `max_attempts` that plus `step_attempts` (takeovers add to it as before). The attempt number itself goes on
      rising: it is the fencing token across the whole job.
    - `cost` (NULL for a failed call) adds to the job's cost; the job's error columns say what made it move on (NULL
      after a success) and a failure is appended to `attempt_errors` (`entry`, `'[]'` otherwise).
    - The record (`job_steps`) of the call it leaves: its status (`succeeded`, `failed`, `skipped`), attempts,
      start, cost, error and output.
    `fence` decides who may move the job (the attempt that holds it, or the callback that finishes its parked
    call); a caller it does not match changes nothing and records nothing. Returns the job's id when it moved."""
    return _sql(f"""
        WITH moved AS (
            UPDATE jobs
            SET status = 'queued', run_after = now(), step_index = %(to_step)s, alternative = %(to_alt)s,
                provider_id = %(provider)s, operation_id = %(operation)s, settings_json = %(settings)s,
                input_media_id = coalesce(CAST(%(output)s AS uuid), input_media_id),
                step_attempt_base = attempt, max_attempts = attempt + %(step_attempts)s, step_started_at = NULL,
                phase = NULL, cost = coalesce(cost, 0) + coalesce(CAST(%(cost)s AS numeric), 0),
                lease_owner = NULL, lease_expires_at = NULL, webhook_token_hash = NULL, provider_ref = NULL,
                error_code = %(code)s, error_message = %(message)s, attempt_errors = attempt_errors || %(entry)s,
                updated_at = now()
            WHERE {fence}
            RETURNING id
        ), record AS (
            INSERT INTO job_steps (job_id, step_index, alternative, provider_id, operation_id, status, attempts,
                                   started_at, cost, error_code, error_message, output_media_id)
            SELECT id, %(from_step)s, %(from_alt)s, %(from_provider)s, %(from_operation)s, %(step_status)s,
                   %(attempts)s, %(step_started)s, %(cost)s, %(code)s, %(message)s, %(output)s
            FROM moved
        ), output AS (
            INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
            SELECT %(output)s, %(m_key)s, %(m_mime)s, %(m_size)s, %(m_sha)s, 'result', %(m_expires)s, moved.id
            FROM moved WHERE CAST(%(output)s AS uuid) IS NOT NULL
        )
        SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM moved
        """)


# Only the attempt holding the job may move it on; or, for a parked call, the callback holding its secret.
MOVE = move_statement("id = %(id)s AND attempt = %(attempt)s AND status = 'running'")
MOVE_BY_CALLBACK = move_statement(_CALLBACK_FENCE)

# What a running attempt is doing after its provider call: storing the image it got (the job detail's phase).
# Fenced like a heartbeat; a job that moved on or ended changes nothing.
UPLOADING = _sql("""
    UPDATE jobs SET phase = 'uploading_image', updated_at = now()
    WHERE id = %(id)s AND attempt = %(attempt)s AND status = 'running'
    """)

# Whether a move applied: the record of the call it left exists (asked after a move's answer was lost).
MOVED = _sql("""
    SELECT 1 FROM job_steps WHERE job_id = %(id)s AND step_index = %(from_step)s AND alternative = %(from_alt)s
    """)


def outputs_statement(fence: str) -> LiteralString:
    """A task's outputs besides its primary one (issue 15), recorded just before the job completes with that one:
    the further outputs' media rows (`ids`, `keys`, `mimes`, `sizes`, `shas`: parallel arrays, kind `result`,
    expiring at `expires`) become `jobs.extra_media_ids` in the provider's order, and the result's JSON `data`
    (or NULL) becomes `result_data`. `fence` as for a move: a caller it does not match changes nothing and inserts
    no row. Returns the job's id when it applied."""
    return _sql(f"""
        WITH job AS (
            UPDATE jobs
            SET extra_media_ids = to_jsonb(CAST(%(ids)s AS text[])), result_data = %(data)s, updated_at = now()
            WHERE {fence}
            RETURNING id
        ), rows AS (
            INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)
            SELECT o.id, o.key, o.mime, o.size, o.sha, 'result', %(expires)s, job.id
            FROM job, unnest(CAST(%(ids)s AS uuid[]), CAST(%(keys)s AS text[]), CAST(%(mimes)s AS text[]),
                             CAST(%(sizes)s AS bigint[]), CAST(%(shas)s AS text[])) AS o(id, key, mime, size, sha)
        )
        SELECT id FROM job
        """)


_ATTEMPT_FENCE = "id = %(id)s AND attempt = %(attempt)s AND status = 'running'"
OUTPUTS = outputs_statement(_ATTEMPT_FENCE)
OUTPUTS_BY_CALLBACK = outputs_statement(_CALLBACK_FENCE)


def data_completion_statement(fence: str) -> LiteralString:
    """A task whose last step's product is a record, not media (`ProviderData`, e.g. a fine-tune's id): it
    succeeds with `result_data` = `data` and no result media, its cost added, waiters woken. `fence` as for a
    completion. Returns the job's id when it applied."""
    return _sql(f"""
        WITH done AS (
            UPDATE jobs
            SET status = 'succeeded', result_data = %(data)s, cost = coalesce(jobs.cost, 0) + %(cost)s,
                finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
                error_code = NULL, error_message = NULL, phase = NULL
            WHERE {fence}
            RETURNING id
        )
        SELECT id, pg_notify('{CHANNEL_DONE}', id::text) FROM done
        """)


COMPLETE_DATA = data_completion_statement(_ATTEMPT_FENCE)
COMPLETE_DATA_BY_CALLBACK = data_completion_statement(_CALLBACK_FENCE)
