"""The job table as a queue: enqueue, claim under per-provider limits, lease and heartbeat, fenced completion,
retries. The SQL, with why each statement is shaped so, is in `boothbridge.jobs.statements`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from boothbridge.db.engine import autocommit
from boothbridge.jobs import statements as sql
from boothbridge.jobs.model import JOB_COLUMNS, JobRecord, NewJob
from boothbridge.jobs.statements import CHANNEL_DONE, CHANNEL_NEW, attempt_error, completion_params
from boothbridge.media.service import MediaRef

__all__ = ["CHANNEL_DONE", "CHANNEL_NEW", "JobQueue"]


class JobQueue:
    """Queue operations over the `jobs` table. `limits` maps provider id -> max parallel running jobs."""

    def __init__(self, engine: AsyncEngine, limits: Mapping[str, int], lease_sec: float) -> None:
        self.engine = engine  # transactions (claim)
        self.db = autocommit(engine)  # single statements: no BEGIN/COMMIT round trips
        self.limits = dict(limits)
        self.lease_sec = lease_sec

    # ---- enqueue -------------------------------------------------------------------------------------

    async def find_reusable(self, slot_id: str, sha256: str) -> JobRecord | None:
        """A job for the same photo on the same slot that a re-post should attach to instead of paying twice:
        one still in flight, or one that succeeded and whose result has not expired."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        f"""
                        SELECT {", ".join("j." + c for c in JOB_COLUMNS.split(", "))} FROM jobs j
                        LEFT JOIN media_objects m ON m.id = j.result_media_id
                        WHERE j.slot_id = :slot AND j.source_sha256 = :sha AND j.is_test = false
                          AND (j.status IN ('queued', 'running', 'waiting_provider')
                               OR (j.status = 'succeeded' AND m.id IS NOT NULL
                                   AND (m.expires_at IS NULL OR m.expires_at > now())))
                        ORDER BY (j.status <> 'succeeded'), j.created_at DESC
                        LIMIT 1
                        """
                    ),
                    {"slot": slot_id, "sha": sha256},
                )
            ).one_or_none()
        return JobRecord.from_row(row) if row else None

    async def enqueue(
        self, job: NewJob, source: MediaRef, source_expires_at: datetime
    ) -> tuple[JobRecord | None, bool]:
        """Insert the job and its source media row and announce it, in one statement (so one round trip).

        Returns (job, True) when inserted. When an identical photo is already in flight on this slot (the
        partial unique index fires) nothing is inserted and (None, False) is returned: the caller attaches
        to the existing job and deletes the bytes it stored.
        """
        async with self.db.connect() as conn:
            inserted = (
                await conn.execute(
                    sql.ENQUEUE,
                    {
                        "id": job.id,
                        "slot": job.slot_id,
                        "provider": job.provider_id,
                        "operation": job.operation_id,
                        "settings": job.settings_json,
                        "source": job.source_media_id,
                        "sha": job.source_sha256,
                        "max_attempts": job.max_attempts,
                        "deadline": job.deadline_at,
                        "meta": job.request_meta,
                        "is_test": job.is_test,
                        "m_key": source.storage_key,
                        "m_mime": source.mime,
                        "m_size": source.size_bytes,
                        "m_sha": source.sha256,
                        "m_expires": source_expires_at,
                    },
                )
            ).one_or_none()
        if inserted is None:
            return None, False
        return JobRecord.from_row(inserted), True

    # ---- claim ---------------------------------------------------------------------------------------

    async def claim(self, owner: str, max_jobs: int, only_id: uuid.UUID | None = None) -> list[JobRecord]:
        """Take up to `max_jobs` claimable jobs for `owner`, honouring each provider's parallel limit.

        Expired leases are taken over here too: a job whose worker died becomes claimable when its lease
        runs out, and the takeover bumps the attempt (fencing the dead worker out). A job that has used up
        its attempts is failed instead of taken.
        """
        if max_jobs <= 0:
            return []
        async with self.engine.begin() as conn:
            providers = sorted((await conn.execute(sql.PROVIDERS_WITH_WORK, {"only_id": only_id})).scalars())
            if not providers:
                return []
            await conn.execute(sql.LOCK_PROVIDERS, {"providers": providers})
            limits = [self.limits.get(p, 1) for p in providers]
            candidates = (
                await conn.execute(
                    sql.CANDIDATES,
                    {"providers": providers, "limits": limits, "only_id": only_id, "max_jobs": max_jobs},
                )
            ).all()
            exhausted = [row.id for row in candidates if row.exhausted]
            if exhausted:
                await conn.execute(
                    sql.FAIL_EXHAUSTED,
                    {"ids": exhausted, "message": "the worker running the last attempt stopped responding"},
                )
            ids = [row.id for row in candidates if not row.exhausted]
            if not ids:
                return []
            rows = (await conn.execute(sql.TAKE, {"ids": ids, "owner": owner, "lease": self.lease_sec})).all()
        claimed = [JobRecord.from_row(row) for row in rows]
        claimed.sort(key=lambda job: ids.index(job.id))  # arrival order, as chosen
        return claimed

    # ---- while running -------------------------------------------------------------------------------

    async def heartbeat(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Extend the lease; False means this attempt no longer holds the job (taken over or finished)."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease),"
                        " updated_at = now()"
                        " WHERE id = :id AND attempt = :attempt AND status = 'running' RETURNING id"
                    ),
                    {"id": job_id, "attempt": attempt, "lease": self.lease_sec},
                )
            ).one_or_none()
        return row is not None

    # ---- finishing -----------------------------------------------------------------------------------

    async def complete(
        self, job_id: uuid.UUID, attempt: int, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> bool:
        """Record success, fenced by attempt number: a stale attempt changes nothing and gets False.
        The job update, the result's media row and the NOTIFY are one statement."""
        params = {"id": job_id, "attempt": attempt, **completion_params(result, result_expires_at, cost)}
        async with self.db.connect() as conn:
            row = (await conn.execute(sql.COMPLETE, params)).one_or_none()
        return row is not None

    async def fail_attempt(
        self,
        job_id: uuid.UUID,
        attempt: int,
        code: str,
        message: str,
        retryable: bool,
        retry_in: float | None,
    ) -> str | None:
        """Record a failed attempt. With `retry_in` the job is requeued to run after that many seconds,
        otherwise it fails for good. Returns the new status, or None if this attempt was stale."""
        entry = attempt_error(attempt, code, message, retryable)
        async with self.db.connect() as conn:
            if retry_in is None:
                return "failed" if await self._fail(conn, job_id, attempt, code, message, entry) else None
            row = (
                await conn.execute(
                    sql.REQUEUE,
                    {
                        "id": job_id,
                        "attempt": attempt,
                        "delay": retry_in,
                        "code": code,
                        "message": message,
                        "entry": [entry],
                    },
                )
            ).one_or_none()
        return "queued" if row is not None else None

    @staticmethod
    async def _fail(
        conn: AsyncConnection, job_id: uuid.UUID, attempt: int, code: str, message: str, entry: dict[str, Any]
    ) -> bool:
        row = (
            await conn.execute(
                sql.FAIL, {"id": job_id, "attempt": attempt, "code": code, "message": message, "entry": [entry]}
            )
        ).one_or_none()
        return row is not None

    # ---- reading -------------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> JobRecord | None:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :id"), {"id": job_id})
            ).one_or_none()
        return JobRecord.from_row(row) if row else None

    async def ended_among(self, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Which of these jobs have reached a terminal state (the per-process fallback poll)."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                text("SELECT id FROM jobs WHERE id = ANY(:ids) AND status IN ('succeeded', 'failed', 'cancelled')"),
                {"ids": job_ids},
            )
            return list(rows.scalars())

    async def next_run_after(self) -> datetime | None:
        """When the earliest delayed retry becomes claimable (lets an idle worker sleep exactly that long)."""
        async with self.db.connect() as conn:
            return (await conn.execute(text("SELECT min(run_after) FROM jobs WHERE status = 'queued'"))).scalar()
