"""The processing log: one row per booth request (SPEC §8), written with the source photo's final expiry."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from psycopg.types.json import Jsonb

from boothbridge.db.raw import RawDb
from boothbridge.ingest_model import IngestOutcome, UploadedForm, public_fields

log = logging.getLogger(__name__)

# One statement (one round trip): the log row, and the booth's photo's expiry, which starts when its request
# ends (SPEC §5: the source is kept only briefly after the answer).
_FINISH = """
    WITH source AS (
        UPDATE media_objects SET expires_at = %(source_expires)s WHERE id = %(source)s::uuid
    )
    INSERT INTO processing_log (slot_id, requested_slot, job_id, status, http_status, response_time_ms, cost,
                                error_code, error_message, fallback, is_test, request_fields)
    VALUES (%(slot)s, %(requested)s, %(job)s, %(status)s, %(http)s, %(ms)s, %(cost)s, %(code)s, %(msg)s,
            %(fallback)s, %(is_test)s, %(fields)s)
    """


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
) -> None:
    """Write the request's log row; never raises (the booth's answer matters more than its log row)."""
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
                "fields": Jsonb(public_fields(form) if form else {}),
                "source": source_id,
                "source_expires": source_expires,
            },
        )
    except Exception:
        log.exception("could not write the processing log for slot %s", requested_slot)
