"""The processing log: one row per booth request (SPEC §8), written with the source photo's final expiry."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from boothbridge.ingest_model import IngestOutcome, UploadedForm, public_fields

log = logging.getLogger(__name__)

# One statement (one round trip): the log row, and the booth's photo's expiry, which starts when its request
# ends (SPEC §5: the source is kept only briefly after the answer).
_FINISH = text(
    """
    WITH source AS (
        UPDATE media_objects SET expires_at = :source_expires WHERE id = CAST(:source AS uuid)
    )
    INSERT INTO processing_log (slot_id, requested_slot, job_id, status, http_status, response_time_ms, cost,
                                error_code, error_message, fallback, is_test, request_fields)
    VALUES (:slot, :requested, :job, :status, :http, :ms, :cost, :code, :msg, :fallback, :is_test, :fields)
    """
).bindparams(bindparam("fields", type_=JSONB))


async def record_request(
    db: AsyncEngine,
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
        async with db.connect() as conn:
            await conn.execute(
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
                    "fields": public_fields(form) if form else {},
                    "source": source_id,
                    "source_expires": source_expires,
                },
            )
    except Exception:
        log.exception("could not write the processing log for slot %s", requested_slot)
