"""Job records for pure tests: one complete JobRecord with plain defaults, any field replaced."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.status import JobStatus


def job_record(now: datetime, **changes: Any) -> JobRecord:
    """A running first attempt on slot-001 (Gemini `change_image`, no settings) created and started at `now`, due
    150 s later, no fallback moment; `changes` replace any field."""
    job = JobRecord(
        id=uuid.uuid4(),
        slot_id="slot-001",
        status=JobStatus.RUNNING,
        provider_id="gemini",
        operation_id="change_image",
        settings_json={},
        source_media_id=uuid.uuid4(),
        source_sha256="0" * 64,
        result_media_id=None,
        attempt=1,
        max_attempts=3,
        deadline_at=now + timedelta(seconds=150),
        booth_fallback_at=None,
        error_code=None,
        error_message=None,
        cost=None,
        created_at=now,
        started_at=now,
        finished_at=None,
    )
    return replace(job, **changes)
