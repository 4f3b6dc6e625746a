"""The processing log: one row per booth request (SPEC §8), written with the source photo's final expiry."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from boothbridge.db.raw import RawDb, retry_safe
from boothbridge.ingest.model import IngestOutcome, UploadedForm, log_fields

log = logging.getLogger(__name__)

# One statement (one round trip): the log row, and the booth's photo's expiry. The photo must outlive every
# attempt its job may still start, so while the job can still run it is kept until the job's deadline and
# SOURCE_TTL beyond; once the job has ended, SOURCE_TTL after the later of the job's end and this request's end
# (SPEC §5: kept only briefly after the answer). It is never shortened while the job can still run: the hold set
# at enqueue already reaches the deadline, and a re-post of the same photo (which attached to the job) runs this
# for the job's photo too, so a re-post extends it.
#
# Retry-safe (run again when the database blinked and the answer was lost): the expiry is recomputed to the same
# value, and the row is inserted only if this request's row (its slot and its own timestamp, to the microsecond)
# is not there yet.
_FINISH = retry_safe("""
    WITH source AS (
        UPDATE media_objects m
        SET expires_at = CASE
            WHEN j.status IN ('queued', 'running', 'waiting_provider') THEN
                greatest(m.expires_at, j.deadline_at + make_interval(secs => %(ttl)s), %(source_expires)s)
            ELSE greatest(coalesce(j.finished_at, now()) + make_interval(secs => %(ttl)s), %(source_expires)s)
            END
        FROM jobs j
        WHERE m.id = %(source)s::uuid AND m.kind = 'source' AND j.id = m.job_id
    )
    INSERT INTO processing_log (slot_id, requested_slot, job_id, status, http_status, response_time_ms, cost,
                                error_code, error_message, fallback, is_test, request_fields, created_at)
    SELECT %(slot)s::text, %(requested)s::text, %(job)s::uuid, %(status)s::text, %(http)s::int, %(ms)s::int,
           %(cost)s::numeric, %(code)s::text, %(msg)s::text, %(fallback)s::boolean, %(is_test)s::boolean,
           %(fields)s::jsonb, %(at)s::timestamptz
    WHERE NOT EXISTS (SELECT 1 FROM processing_log
                      WHERE created_at = %(at)s::timestamptz AND requested_slot = %(requested)s::text)
    """)


async def record_request(
    db: RawDb,
    requested_slot: str,
    slot_id: str | None,
    form: UploadedForm | None,
    outcome: IngestOutcome,
    elapsed_ms: int,
    source_id: uuid.UUID | None,
    source_expires: datetime,
    is_test: bool,
    *,
    source_ttl_sec: float = 60.0,
) -> None:
    """Write the request's log row and set its photo's expiry (`source_id`: the photo this request stored, or
    the one of the job it attached to); never raises (the booth's answer matters more than its log row)."""
    err = outcome.error
    try:
        await db.execute(
            _FINISH,
            {
                "slot": slot_id,
                "requested": requested_slot.replace("\x00", "")[:200],
                "job": outcome.job_id,
                "status": outcome.log_status,
                "http": outcome.status,
                "ms": elapsed_ms,
                "cost": outcome.cost,
                "code": err.code if err else None,
                "msg": err.message if err else None,
                "fallback": outcome.fallback,
                "is_test": is_test,
                "fields": Jsonb(log_fields(form, outcome) if form else {}),
                "source": source_id,
                "source_expires": source_expires,
                "ttl": float(source_ttl_sec),
                "at": datetime.now(UTC),
            },
        )
    except Exception:
        log.exception("could not write the processing log for slot %s", requested_slot)
