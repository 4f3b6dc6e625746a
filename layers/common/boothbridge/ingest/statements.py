"""Ingest's own SQL statements, on the hot path's pool (`boothbridge.db.raw`, psycopg's `%(name)s` placeholders;
see `boothbridge.jobs.statements` for the conventions). The queue's statements that ingest runs (ADMIT, ENQUEUE,
READ) stay with the queue's; here are the slot's read and the processing log's row, which ingest alone runs.
"""

from __future__ import annotations

from typing import LiteralString, cast

from boothbridge.db.raw import retry_safe
from boothbridge.jobs.status import JobStatus, sql_list

_ACTIVE = sql_list(JobStatus.ACTIVE)


def _retry_safe(text: str) -> LiteralString:
    """Registered as safe to run again after a connection-level failure. Composed only from literal text and
    JobStatus values, never from input (the f-string hides that from a type checker: asserted here)."""
    return retry_safe(cast(LiteralString, text))  # type: ignore[redundant-cast]


# The slot as ingest runs it (its pipeline too), and the ingest password's digest, in one read on every request (a
# changed slot or password applies at once). A read: retried on a fresh connection when the database blinks.
SLOT = retry_safe("""
    SELECT s.id, s.provider_id, s.operation_id, s.settings_json, s.failure_policy,
           s.steps, s.finishing, s.variants, s.variant_field,
           (SELECT value->>'digest' FROM app_settings WHERE key = %(pw_key)s) AS digest
    FROM slots s WHERE s.id = %(id)s
    """)

# One statement (one round trip): the log row, and the booth's photo's expiry. The photo must outlive every
# attempt its job may still start, so while the job can still run it is kept until the job's deadline and
# SOURCE_TTL beyond; once the job has ended, SOURCE_TTL after the later of the job's end and this request's end
# (SPEC §5: kept only briefly after the answer). It is never shortened while the job can still run: the hold set
# at enqueue already reaches the deadline, and a re-post of the same photo (which attached to the job) runs this
# for the job's photo too, so a re-post extends it.
#
# `failed_step`/`failed_alternative`: where a failed request's job stopped (its step and alternative when it
# ended; NULL for a success, a 504 and a request without a job), given by the caller from the job it read last.
#
# Retry-safe (run again when the database blinked and the answer was lost): the expiry is recomputed to the same
# value, and the row is inserted only if this request's row (its slot and its own timestamp, to the microsecond)
# is not there yet.
LOG_REQUEST = _retry_safe(f"""
    WITH source AS (
        UPDATE media_objects m
        SET expires_at = CASE
            WHEN j.status IN {_ACTIVE} THEN
                greatest(m.expires_at, j.deadline_at + make_interval(secs => %(ttl)s), %(source_expires)s)
            ELSE greatest(coalesce(j.finished_at, now()) + make_interval(secs => %(ttl)s), %(source_expires)s)
            END
        FROM jobs j
        WHERE m.id = %(source)s::uuid AND m.kind = 'source' AND j.id = m.job_id
    )
    INSERT INTO processing_log (slot_id, requested_slot, job_id, status, http_status, response_time_ms, cost,
                                error_code, error_message, fallback, is_test, request_fields, failed_step,
                                failed_alternative, created_at)
    SELECT %(slot)s::text, %(requested)s::text, %(job)s::uuid, %(status)s::text, %(http)s::int, %(ms)s::int,
           %(cost)s::numeric, %(code)s::text, %(msg)s::text, %(fallback)s::boolean, %(is_test)s::boolean,
           %(fields)s::jsonb, %(failed_step)s::int, %(failed_alternative)s::int, %(at)s::timestamptz
    WHERE NOT EXISTS (SELECT 1 FROM processing_log
                      WHERE created_at = %(at)s::timestamptz AND requested_slot = %(requested)s::text)
    """)
