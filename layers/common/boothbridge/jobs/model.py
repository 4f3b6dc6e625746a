"""Job records as the queue hands them around (plain data, no ORM)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boothbridge.jobs.status import JobStatus
from boothbridge.media.ref import MediaRef, media_from


@dataclass(frozen=True)
class JobRecord:
    id: uuid.UUID
    slot_id: str
    status: JobStatus
    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]
    source_media_id: uuid.UUID
    source_sha256: str
    result_media_id: uuid.UUID | None
    attempt: int
    max_attempts: int
    deadline_at: datetime
    booth_fallback_at: datetime | None
    error_code: str | None
    error_message: str | None
    cost: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # Leases that ran out on this job (its worker died or hung), counted apart from provider attempts.
    lease_expiries: int = 0
    # The pipeline as the job runs it ({} before pipelines: one step, the columns above; see `jobs.pipeline`), the
    # step and alternative it is at, the attempt number that step started after, when its clock started, its input
    # photo (None: the booth's photo) and what a running attempt does besides the provider call.
    pipeline: dict[str, Any] = field(default_factory=dict)
    step_index: int = 0
    alternative: int = 0
    step_attempt_base: int = 0
    step_started_at: datetime | None = None
    input_media_id: uuid.UUID | None = None
    phase: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in JobStatus.TERMINAL

    @property
    def last_useful_end(self) -> datetime:
        """The latest moment an attempt may still end usefully: the job's deadline, or earlier when the waiting
        booth will have been answered with its own photo by then (a result after that is paid for nothing)."""
        if self.booth_fallback_at is None:
            return self.deadline_at
        return min(self.deadline_at, self.booth_fallback_at)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRecord:
        """From a row of the job columns (the hot path's psycopg rows are dicts)."""
        return JobRecord(**job_fields(row))


JOB_FIELDS = tuple(JobRecord.__dataclass_fields__)
JOB_COLUMNS = ", ".join(JOB_FIELDS)


def job_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The JobRecord fields of a row that holds (at least) the job columns (the status as a JobStatus)."""
    fields = {name: row[name] for name in JOB_FIELDS}
    fields["status"] = JobStatus(fields["status"])
    return fields


def job_columns(alias: str) -> str:
    """JOB_COLUMNS qualified with a table alias (for statements that join another table)."""
    return ", ".join(f"{alias}.{name}" for name in JOB_FIELDS)


@dataclass(frozen=True)
class ClaimedJob(JobRecord):
    """A job as the claim hands it to a worker, with its source photo's media row read in the same statement:
    None when that row is gone or expired (the attempt then fails with `source_expired`)."""

    source: MediaRef | None = None

    @classmethod
    def from_claim(cls, row: Any) -> ClaimedJob:
        return cls(**job_fields(row), source=media_from(row))


@dataclass(frozen=True)
class JobWithResult(JobRecord):
    """A job as a waiter reads it, with its result's media row read in the same statement: None when the job
    has no result or the row is gone or expired."""

    result: MediaRef | None = None

    @classmethod
    def from_read(cls, row: Any) -> JobWithResult:
        return cls(**job_fields(row), result=media_from(row))

    @classmethod
    def completed(cls, row: Any, result: MediaRef) -> JobWithResult:
        """From the completion statement's row and the result it recorded."""
        return cls(**job_fields(row), result=result)


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
    # When the waiting booth gets its own photo instead (slot policy `original`), else None.
    booth_fallback_at: datetime | None = None
    # The whole pipeline (`{"steps": [...], "finishing": {...}, "max_attempts": n}`; see `jobs.pipeline`); the
    # fields above name its first step. {}: one step, the one those fields name.
    pipeline: dict[str, Any] = field(default_factory=dict)
