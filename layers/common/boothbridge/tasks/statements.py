"""Every SQL statement of machine-client tasks and their deliveries (issue 15), each commented with why it is shaped
so. psycopg's `%(name)s` placeholders; they run on the raw pool (`boothbridge.db.raw`). The task's cancel is
`jobs.statements.CANCEL_TASK` (the queue's cancel, owned by the task's operator).
"""

from __future__ import annotations

from boothbridge.jobs.statements import CHANNEL_NEW, _sql

# ---- submit ------------------------------------------------------------------------------------------------

# The task's job (kind `task`: no slot, its operator and API key, the caller's ids) queued for its first step's
# provider, its delivery row when the caller gave a writeUrl, and the NOTIFY that wakes the claimers: one
# statement, so a task is never visible without its delivery. The job's input image is an existing media row (the
# caller's input, stored first); `source` NULL for a prompt-only first step.
INSERT_TASK = _sql(f"""
    WITH job AS (
        INSERT INTO jobs (id, kind, status, provider_id, operation_id, settings_json, pipeline, source_media_id,
                          source_sha256, max_attempts, deadline_at, request_meta, owner_id, api_key_id, api,
                          client_ref)
        VALUES (%(id)s, 'task', 'queued', %(provider)s, %(operation)s, %(settings)s, %(pipeline)s, %(source)s,
                %(sha)s, %(max_attempts)s, %(deadline)s, '{{}}', %(owner)s, %(key)s, %(api)s, %(client_ref)s)
        RETURNING id
    ), delivery AS (
        INSERT INTO task_deliveries (job_id, output_index, write_url, read_url, expires_at)
        SELECT id, 0, %(write_url)s, %(read_url)s, %(delivery_expires)s FROM job
        WHERE CAST(%(write_url)s AS text) IS NOT NULL
    )
    SELECT id, pg_notify('{CHANNEL_NEW}', id::text) FROM job
    """)

# ---- reads (always scoped to the caller's operator: another's task is simply not found) -----------------------

# What a task's view shows: the job's columns, its outputs' live media rows in order (0: the result, then the
# further outputs), and its deliveries.
_TASK_COLUMNS = """
    j.id, j.api, j.client_ref, j.status, j.phase, j.step_index, j.operation_id, j.pipeline, j.error_code,
    j.error_message, j.cost, j.created_at, j.started_at, j.finished_at, j.result_data,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('index', o.idx - 1, 'id', m.id, 'mime', m.mime,
                                                  'key', m.storage_key) ORDER BY o.idx), '[]')
     FROM jsonb_array_elements_text(
              CASE WHEN j.result_media_id IS NULL THEN '[]'::jsonb ELSE to_jsonb(ARRAY[j.result_media_id::text]) END
              || j.extra_media_ids) WITH ORDINALITY AS o(media_id, idx)
     JOIN media_objects m ON m.id = CAST(o.media_id AS uuid) AND (m.expires_at IS NULL OR m.expires_at > now())
    ) AS outputs,
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'index', d.output_index, 'status', d.status, 'attempts', d.attempts, 'read_url', d.read_url,
                'error_code', d.error_code, 'error_message', d.error_message) ORDER BY d.output_index), '[]')
     FROM task_deliveries d WHERE d.job_id = j.id) AS deliveries
"""

TASK = _sql(f"""
    SELECT {_TASK_COLUMNS} FROM jobs j WHERE j.id = %(id)s AND j.kind = 'task' AND j.owner_id = %(owner)s
    """)

# A page of the operator's tasks, newest first (the partial index on owner_id, created_at), and their total.
TASK_PAGE = _sql(f"""
    SELECT {_TASK_COLUMNS} FROM jobs j
    WHERE j.kind = 'task' AND j.owner_id = %(owner)s
    ORDER BY j.created_at DESC, j.id DESC LIMIT %(limit)s OFFSET %(offset)s
    """)
TASK_COUNT = _sql("SELECT count(*) AS total FROM jobs WHERE kind = 'task' AND owner_id = %(owner)s")

# ---- deliveries (`tasks.delivery`) -----------------------------------------------------------------------------

# Due deliveries of succeeded tasks, taken under a lease (`claimed_until`) so overlapping passes (the in-process
# loop, the scheduled cleanup, another process) never PUT the same output at once; SKIP LOCKED splits them. Each
# comes with its output's media id (0: the result; k: the k-th further output). A lease that ran out (a pass died
# mid-PUT) makes the row due again. `attempts` counts the PUTs started.
CLAIM_DELIVERIES = _sql("""
    WITH due AS (
        SELECT d.job_id, d.output_index FROM task_deliveries d JOIN jobs j ON j.id = d.job_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND d.expires_at > now()
          AND (d.claimed_until IS NULL OR d.claimed_until <= now()) AND j.status = 'succeeded'
          AND (CAST(%(job)s AS uuid) IS NULL OR d.job_id = %(job)s)
        ORDER BY d.next_attempt_at LIMIT %(batch)s
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE task_deliveries t
    SET claimed_until = now() + make_interval(secs => %(lease)s), attempts = t.attempts + 1
    FROM due, jobs j
    WHERE t.job_id = due.job_id AND t.output_index = due.output_index AND j.id = t.job_id
    RETURNING t.job_id, t.output_index, t.write_url, t.expires_at, t.attempts,
              CASE WHEN t.output_index = 0 THEN j.result_media_id
                   ELSE CAST(j.extra_media_ids ->> (t.output_index - 1) AS uuid) END AS media_id
    """)

# The outcome of one PUT, fenced by the attempt count the claim set (a later claim's PUT owns the row).
DELIVERED = _sql("""
    UPDATE task_deliveries
    SET status = 'delivered', delivered_at = now(), claimed_until = NULL, error_code = NULL, error_message = NULL
    WHERE job_id = %(job)s AND output_index = %(index)s AND attempts = %(attempts)s AND status = 'pending'
    RETURNING job_id
    """)
RETRY_LATER = _sql("""
    UPDATE task_deliveries
    SET next_attempt_at = %(at)s, claimed_until = NULL, error_code = %(code)s, error_message = %(message)s
    WHERE job_id = %(job)s AND output_index = %(index)s AND attempts = %(attempts)s AND status = 'pending'
    RETURNING job_id
    """)
DELIVERY_FAILED = _sql("""
    UPDATE task_deliveries
    SET status = 'failed', claimed_until = NULL, error_code = %(code)s, error_message = %(message)s
    WHERE job_id = %(job)s AND output_index = %(index)s AND attempts = %(attempts)s AND status = 'pending'
    RETURNING job_id
    """)

# Deliveries that can no longer happen: past their expiry (the result TTL), or of a task that failed or was
# cancelled (it has nothing to deliver). Not under a live lease: a PUT in progress decides its own row.
GIVE_UP_DELIVERIES = _sql("""
    UPDATE task_deliveries d
    SET status = 'failed',
        error_code = CASE WHEN j.status = 'succeeded' THEN 'delivery_expired' ELSE 'task_not_succeeded' END,
        error_message = CASE WHEN j.status = 'succeeded'
                             THEN 'the output could not be delivered within the result TTL'
                             ELSE 'the task ended without an output to deliver' END
    FROM jobs j
    WHERE j.id = d.job_id AND d.status = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until <= now())
      AND (d.expires_at <= now() OR j.status IN ('failed', 'cancelled'))
    RETURNING d.job_id
    """)
