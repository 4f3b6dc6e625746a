"""The operator's read-model of jobs (SPEC §6): list, detail, and the status stream's source.

An operator sees only jobs on their own slots; anyone else's job is "not found" (404 `job_not_found`), exactly
like an id that does not exist, so ids do not leak ownership.

Timings are milliseconds measured on the database clock:
- `queued_ms`: arrival until the first attempt started (until cancelled, for a job cancelled while queued);
- `run_ms`: first start until the end (retry back-off included), null if it never started;
- `total_ms`: arrival until the end.
While a phase is still going on, its figure is "so far" (measured against now), so it grows between reads.

The reads are `JOB_DETAIL`, `JOB_PAGE` and `JOB_STATE` in `boothbridge.jobs.statements`, one statement each.
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
from boothbridge.jobs import statements as sql
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
    """A job's status as the stream reports it."""

    status: str
    attempt: int
    at: datetime | None
    error_code: str | None
    error_message: str | None

    @property
    def is_terminal(self) -> bool:
        return self.status in JobStatus.TERMINAL

    def json(self) -> dict[str, Any]:
        error = {"code": self.error_code, "message": self.error_message} if self.error_code else None
        return {
            "status": self.status,
            "attempt": self.attempt,
            "at": self.at.isoformat() if self.at else None,
            "error": error if self.status in JobStatus.ENDED_IN_ERROR else None,
        }


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
        return JobState(row.status, row.attempt, row.at, row.error_code, row.error_message)


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
    """The job's state now, then every change of (status, attempt) as it happens; `None` when nothing changed
    for `keepalive_sec`. Ends after a terminal state, when the job can no longer be read, or after `max_sec`.

    Subscribed to the hub before the first read, so an ending is never missed; the hub only announces endings,
    so the row is also re-read every `poll_sec` (queued -> running, a retry, parking send no notification).
    Without a hub (a process with no LISTEN connection) the timer alone drives it.
    """
    started = last_sent = time.monotonic()
    seen: tuple[str, int] | None = None
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
            if (state.status, state.attempt) != seen:
                seen = (state.status, state.attempt)
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
