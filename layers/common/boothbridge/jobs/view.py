"""The operator's read-model of jobs (SPEC §6): list, detail, and the status stream's source.

An operator sees only jobs on their own slots; anyone else's job is "not found" (404 `job_not_found`), exactly
like an id that does not exist, so ids do not leak ownership.

Timings are milliseconds measured on the database clock:
- `queued_ms`: arrival until the first attempt started (until cancelled, for a job cancelled while queued);
- `run_ms`: first start until the end (retry back-off included), null if it never started;
- `total_ms`: arrival until the end.
While a phase is still going on, its figure is "so far" (measured against now), so it grows between reads.

Each job also shows where it is in its pipeline (`boothbridge.jobs.progress` defines the figures): `steps` (each
step and alternative tried, then the steps not reached), `step_index` (0-based), `step_count`, `phase`,
`progress` (0.0-1.0) and `failed_step` (where a failed job stopped). The stream's states carry the step, the
alternative, the phase and the progress too, and a change of any of them is an event.

The reads are `JOB_DETAIL`, `JOB_PAGE` and `JOB_STATE` in `boothbridge.jobs.view_statements`, one statement each.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boothbridge.errors import AppError
from boothbridge.jobs import progress as steps
from boothbridge.jobs import view_statements as sql
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.status import JobStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_PAGE = 20, 100, 100_000


def job_not_found(job_id: object) -> AppError:
    return AppError(404, "job_not_found", "no such job", {"job_id": str(job_id)})


def parse_job_id(raw: str) -> uuid.UUID:
    """A job id from a path: anything that is not a uuid is simply a job that does not exist."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise job_not_found(raw[:100]) from None


def _invalid(name: str, allowed: Any) -> AppError:
    return AppError(
        400, "invalid_parameter", f"invalid {name}; allowed: {allowed}", {"parameter": name, "allowed": allowed}
    )


def parse_statuses(raw: str | None) -> list[str] | None:
    """`status=failed` or several, comma-separated (`status=queued,running`); each must be a job status."""
    if raw is None or not raw.strip():
        return None
    statuses = [s.strip() for s in raw.split(",") if s.strip()]
    if any(s not in frozenset(JobStatus) for s in statuses):
        raise _invalid("status", [str(status) for status in JobStatus])
    return statuses


@dataclass(frozen=True)
class JobQuery:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    slot_id: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class JobState:
    """A job's status as the stream reports it: the status and attempt, where it is in its pipeline (`step_index`
    0-based of `step_count`, `alternative`: 0 the step's own provider, k its k-th alternative), its `phase` and
    `progress` (0.0-1.0; see `boothbridge.jobs.progress`)."""

    status: str
    attempt: int
    at: datetime | None
    error_code: str | None
    error_message: str | None
    step_index: int = 0
    step_count: int = 1
    alternative: int = 0
    phase: str = steps.QUEUED

    @property
    def is_terminal(self) -> bool:
        return self.status in JobStatus.TERMINAL

    @property
    def progress(self) -> float:
        return steps.progress(self.step_index, self.step_count, self.status, self.phase)

    @property
    def changes(self) -> tuple[str, int, int, int, str]:
        """What the stream tells about: another value of any of these is an event."""
        return (self.status, self.attempt, self.step_index, self.alternative, self.phase)

    def json(self) -> dict[str, Any]:
        """`{"status", "attempt", "at", "error", "step_index", "step_count", "alternative", "phase", "progress"}`."""
        error = {"code": self.error_code, "message": self.error_message} if self.error_code else None
        return {
            "status": self.status,
            "attempt": self.attempt,
            "at": self.at.isoformat() if self.at else None,
            "error": error if self.status in JobStatus.ENDED_IN_ERROR else None,
            "step_index": self.step_index,
            "step_count": self.step_count,
            "alternative": self.alternative,
            "phase": self.phase,
            "progress": self.progress,
        }

    @classmethod
    def from_row(cls, r: Any) -> JobState:
        """From a `JOB_STATE` row."""
        return cls(
            r.status,
            r.attempt,
            r.at,
            r.error_code,
            r.error_message,
            step_index=r.step_index,
            step_count=steps.step_count(r.planned_count),
            alternative=r.alternative,
            phase=steps.phase(r.status, r.operation_id, r.phase),
        )


def step_now(r: Any) -> steps.StepNow:
    """The step a job is at, from a `JOB_DETAIL` / `JOB_PAGE` row."""
    return steps.StepNow(
        index=r.step_index,
        alternative=r.alternative,
        provider_id=r.provider_id,
        operation_id=r.operation_id,
        status=r.status,
        phase_column=r.phase,
        attempts=r.step_attempts,
        started_at=r.step_started_at,
        job_started_at=r.started_at,
        finished_at=r.finished_at,
        cost=float(r.step_cost) if r.step_cost is not None else None,
        error_code=r.error_code,
        error_message=r.error_message,
        output_media_id=str(r.result_media_id) if r.result_media_id is not None else None,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class JobsView:
    """Reads for the operator API. `db` is the autocommit engine (every read is one statement)."""

    def __init__(self, db: AsyncEngine, base_url: str) -> None:
        self.db = db
        self.base_url = base_url

    def detail_json(self, r: Any) -> dict[str, Any]:
        error = {"code": r.error_code, "message": r.error_message} if r.error_code else None
        return {
            "id": str(r.id),
            "slot_id": r.slot_id,
            "status": r.status,
            "provider_id": r.provider_id,
            "operation_id": r.operation_id,
            "attempt": r.attempt,
            "max_attempts": r.max_attempts,
            "attempt_errors": r.attempt_errors or [],
            "error": error,
            "cost": float(r.cost) if r.cost is not None else None,
            "timings": {
                "created_at": _iso(r.created_at),
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "queued_ms": r.queued_ms,
                "run_ms": r.run_ms,
                "total_ms": r.total_ms,
            },
            "is_test": r.is_test,
            "result_url": f"{self.base_url}/public/media/{r.live_result_id}" if r.live_result_id else None,
            **self.pipeline_json(r),
        }

    @staticmethod
    def pipeline_json(r: Any) -> dict[str, Any]:
        """Where the job of row `r` is in its pipeline: `steps`, `step_index`, `step_count`, `phase`, `progress`
        and `failed_step` (`{index, alternative, provider_id, operation_id}` of a failed job, else null)."""
        now = step_now(r)
        count = steps.step_count(len(r.planned) if r.planned else None)
        phase = steps.phase(r.status, r.operation_id, r.phase)
        return {
            "steps": steps.step_entries(r.planned, r.finished_steps or [], now),
            "step_index": r.step_index,
            "step_count": count,
            "phase": phase,
            "progress": steps.progress(r.step_index, count, r.status, phase),
            "failed_step": steps.failed_step(now),
        }

    async def get(self, user_id: int, job_id: uuid.UUID) -> dict[str, Any]:
        async with self.db.connect() as conn:
            row = (await conn.exec_driver_sql(sql.JOB_DETAIL, {"uid": user_id, "id": job_id})).one_or_none()
        if row is None:
            raise job_not_found(job_id)
        return self.detail_json(row)

    async def list(self, user_id: int, q: JobQuery) -> dict[str, Any]:
        if not 1 <= q.page <= MAX_PAGE:
            raise _invalid("page", f"1..{MAX_PAGE}")
        if not 1 <= q.page_size <= MAX_PAGE_SIZE:
            raise _invalid("page_size", f"1..{MAX_PAGE_SIZE}")
        statuses = parse_statuses(q.status)
        params = {
            "uid": user_id,
            "slot": q.slot_id or None,
            "statuses": statuses,
            "limit": q.page_size,
            "offset": (q.page - 1) * q.page_size,
        }
        async with self.db.connect() as conn:
            rows = (await conn.exec_driver_sql(sql.JOB_PAGE, params)).all()
        data = [self.detail_json(r) for r in rows if r.id is not None]
        return {"data": data, "meta": {"page": q.page, "page_size": q.page_size, "total": rows[0].total}}

    async def state(self, user_id: int, job_id: uuid.UUID) -> JobState | None:
        async with self.db.connect() as conn:
            row = (await conn.exec_driver_sql(sql.JOB_STATE, {"uid": user_id, "id": job_id})).one_or_none()
        if row is None:
            return None
        return JobState.from_row(row)


async def watch_job(
    view: JobsView,
    hub: NotificationHub | None,
    user_id: int,
    job_id: uuid.UUID,
    *,
    poll_sec: float,
    keepalive_sec: float,
    max_sec: float,
) -> AsyncIterator[JobState | None]:
    """The job's state now, then every change of its status, attempt, step, alternative or phase as it happens;
    `None` when nothing changed for `keepalive_sec`. Ends after a terminal state, when the job can no longer be
    read, or after `max_sec`.

    Subscribed to the hub before the first read, so an ending is never missed; the hub only announces endings,
    so the row is also re-read every `poll_sec` (queued -> running, a retry, parking send no notification).
    Without a hub (a process with no LISTEN connection) the timer alone drives it.
    """
    started = last_sent = time.monotonic()
    seen: tuple[str, int, int, int, str] | None = None
    # Without a hub: an event nobody sets, so only the timer wakes the loop.
    subscription: AbstractContextManager[asyncio.Event] = (
        hub.subscribe(job_id) if hub is not None else nullcontext(asyncio.Event())
    )
    with subscription as woken:
        while True:
            woken.clear()  # cleared before the read: an ending signalled after it sets it again
            state = await view.state(user_id, job_id)
            if state is None:
                return
            now = time.monotonic()
            if state.changes != seen:
                seen = state.changes
                last_sent = now
                yield state
            elif now - last_sent >= keepalive_sec:
                last_sent = now
                yield None
            if state.is_terminal or now - started >= max_sec:
                return
            try:
                await asyncio.wait_for(woken.wait(), poll_sec)
            except TimeoutError:
                pass
