"""The processing log: one row per booth request (SPEC §8), written with the source photo's final expiry (one
statement, `LOG_REQUEST` in `boothbridge.ingest.statements`: the expiry depends on the job's status)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from boothbridge.db.raw import RawDb, is_connection_trouble, trouble_reason
from boothbridge.ingest import statements as sql
from boothbridge.ingest.model import IngestOutcome, UploadedForm, log_fields

log = logging.getLogger(__name__)


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
            sql.LOG_REQUEST,
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
                "failed_step": outcome.failed_step,
                "failed_alternative": outcome.failed_alternative,
                "source": source_id,
                "source_expires": source_expires,
                "ttl": float(source_ttl_sec),
                "at": datetime.now(UTC),
            },
        )
    except Exception as exc:
        if not is_connection_trouble(exc):
            log.exception("could not write the processing log for slot %s", requested_slot)
            return
        # A busy pool past the row's budget, or the database away: the row is lost, not what it says (this line
        # carries the request id and the row's facts), and a burst does not print a traceback per request.
        reason = trouble_reason(exc)
        log.warning(
            "could not write the processing log for slot %s (%s); the row's facts are on this line",
            requested_slot,
            reason,
            extra={
                "log_row": {
                    "slot": slot_id,
                    "job_id": str(outcome.job_id) if outcome.job_id else None,
                    "status": outcome.log_status,
                    "http": outcome.status,
                    "code": err.code if err else None,
                    "ms": elapsed_ms,
                    "fallback": outcome.fallback,
                    "is_test": is_test,
                },
                "db_reason": reason,
            },
        )
