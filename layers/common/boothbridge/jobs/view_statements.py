"""The operator's read-model of jobs (`boothbridge.jobs.view`): the detail, a page of the list and the status
stream's read, one statement each, with why each is shaped so.

The conventions are `boothbridge.jobs.statements`': psycopg's `%(name)s` placeholders (a literal `%` written
`%%`), run on the operator side's SQLAlchemy engine through `conn.exec_driver_sql`, job statuses rendered as
literal lists by `sql_list`. A job's steps come from three places (see `boothbridge.jobs.progress`): the pipeline
it runs (`jobs.pipeline`, the planned steps), the job_steps rows (each step and alternative it finished with) and
its own row (the step it is at now).
"""

from __future__ import annotations

from typing import LiteralString, cast

from boothbridge.jobs.status import JobStatus, sql_list

_TERMINAL = sql_list(JobStatus.TERMINAL)


def _sql(text: str) -> LiteralString:
    """A statement as psycopg's typing wants it: composed only from this module's literal text and constants,
    never from input (see `boothbridge.jobs.statements._sql`)."""
    return cast(LiteralString, text)  # type: ignore[redundant-cast]


def _ms(later: str, earlier: str) -> str:
    return f"CAST(floor(extract(epoch FROM ({later}) - ({earlier})) * 1000) AS bigint)"


# The planned steps' (provider_id, operation_id) in order, as a JSON array of pairs: only what the pending entries
# show (the settings, prompts included, stay in the row). NULL for a job from before pipelines (`pipeline = {}`:
# one step, the job's own columns) and for anything that is not a list of steps.
_PLANNED = """
    (SELECT jsonb_agg(jsonb_build_array(e->>'provider_id', e->>'operation_id') ORDER BY n)
     FROM jsonb_array_elements(CASE WHEN jsonb_typeof(j.pipeline->'steps') = 'array' THEN j.pipeline->'steps' END)
          WITH ORDINALITY AS p(e, n)) AS planned"""

# The step count alone (the stream's read): the planned steps' number, NULL as above.
_PLANNED_COUNT = """
    CASE WHEN jsonb_typeof(j.pipeline->'steps') = 'array' THEN jsonb_array_length(j.pipeline->'steps') END
        AS planned_count"""

# The job_steps rows of the job `j`, in (step, alternative) order, and their costs' sum: a LATERAL aggregate, so
# each job's rows are read by the primary key's prefix (job_id), and only for the rows the statement returns
# (a page's, never the whole filtered list). No rows: `finished_steps` and `steps_cost` are NULL.
_FINISHED_STEPS = """
    LEFT JOIN LATERAL (
        SELECT jsonb_agg(jsonb_build_object(
                   'index', s.step_index, 'alternative', s.alternative, 'provider_id', s.provider_id,
                   'operation_id', s.operation_id, 'status', s.status, 'attempts', s.attempts,
                   'started_at', s.started_at, 'finished_at', s.finished_at, 'cost', s.cost,
                   'error_code', s.error_code, 'error_message', s.error_message,
                   'output_media_id', s.output_media_id)
                   ORDER BY s.step_index, s.alternative) AS finished_steps,
               sum(s.cost) AS steps_cost
        FROM job_steps s WHERE s.job_id = j.id
    ) st ON true"""

# Everything the detail shows, over `j` (jobs), `m` (the result's media row, LEFT JOINed) and `st` (the job's
# job_steps, `_FINISHED_STEPS`). `jobs.cost` is the whole job's (each step adds its own), so the step the job is at
# cost what the finished steps did not: `step_cost`.
_DETAIL_COLUMNS = f"""
    j.id, j.slot_id, j.status, j.provider_id, j.operation_id, j.attempt, j.max_attempts, j.attempt_errors,
    j.error_code, j.error_message, j.cost, j.is_test, j.created_at, j.started_at, j.finished_at,
    {_ms("coalesce(j.started_at, j.finished_at, now())", "j.created_at")} AS queued_ms,
    CASE WHEN j.started_at IS NOT NULL THEN {_ms("coalesce(j.finished_at, now())", "j.started_at")} END AS run_ms,
    {_ms("coalesce(j.finished_at, now())", "j.created_at")} AS total_ms,
    CASE WHEN m.id IS NOT NULL AND (m.expires_at IS NULL OR m.expires_at > now()) THEN m.id END AS live_result_id,
    j.result_media_id, j.step_index, j.alternative, j.attempt - j.step_attempt_base AS step_attempts,
    j.step_started_at, j.phase, {_PLANNED}, st.finished_steps,
    j.cost - coalesce(st.steps_cost, 0) AS step_cost
"""

# One job of the operator's (the slot's owner is the job's owner).
JOB_DETAIL = _sql(f"""
    SELECT {_DETAIL_COLUMNS}
    FROM jobs j
    JOIN slots s ON s.id = j.slot_id AND s.user_id = %(uid)s
    LEFT JOIN media_objects m ON m.id = j.result_media_id
    {_FINISHED_STEPS}
    WHERE j.id = %(id)s
    """)

# A page, newest first, and the total in one statement: the page is LEFT JOINed to the count, so a page past
# the end still returns one row carrying `total` (with NULL job columns). The steps are aggregated for the page's
# rows only (the LATERAL sits in the page's subquery).
JOB_PAGE = _sql(f"""
    WITH filtered AS (
        SELECT j.* FROM jobs j JOIN slots s ON s.id = j.slot_id
        WHERE s.user_id = %(uid)s
          AND (CAST(%(slot)s AS text) IS NULL OR j.slot_id = %(slot)s)
          AND (CAST(%(statuses)s AS text[]) IS NULL OR j.status = ANY(%(statuses)s))
    ), page AS (
        SELECT * FROM filtered ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s
    )
    SELECT n.total, page_rows.*
    FROM (SELECT count(*) AS total FROM filtered) n
    LEFT JOIN (
        SELECT {_DETAIL_COLUMNS} FROM page j LEFT JOIN media_objects m ON m.id = j.result_media_id
        {_FINISHED_STEPS}
    ) page_rows ON true
    ORDER BY page_rows.created_at DESC, page_rows.id DESC
    """)

# What the status stream watches: cheap (two primary-key lookups, no job_steps), ownership checked on every read.
# `at`: when the job reached its end, otherwise the row's last change. The step, alternative and phase are the
# row's own columns, so a change of any of them is seen on the next read.
JOB_STATE = _sql(f"""
    SELECT j.status, j.attempt, j.error_code, j.error_message, j.operation_id, j.step_index, j.alternative,
           j.phase, {_PLANNED_COUNT},
           CASE WHEN j.status IN {_TERMINAL} THEN j.finished_at ELSE j.updated_at END AS at
    FROM jobs j JOIN slots s ON s.id = j.slot_id AND s.user_id = %(uid)s
    WHERE j.id = %(id)s
    """)
