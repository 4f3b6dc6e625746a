"""Job records as the queue hands them around (plain data, no ORM)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobRecord:
    id: uuid.UUID
    slot_id: str
    status: str
    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]
    source_media_id: uuid.UUID
    source_sha256: str
    result_media_id: uuid.UUID | None
    attempt: int
    max_attempts: int
    deadline_at: datetime
    error_code: str | None
    error_message: str | None
    cost: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})


JOB_COLUMNS = ", ".join(JobRecord.__dataclass_fields__)


@dataclass(frozen=True)
class NewJob:
    id: uuid.UUID
    slot_id: str
    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]
    source_media_id: uuid.UUID
    source_sha256: str
    max_attempts: int
    deadline_at: datetime
    request_meta: dict[str, Any]
    is_test: bool = False
