"""The job table as a queue: enqueue, claim under per-provider limits, lease and heartbeat, fenced completion,
retries. The SQL, with why each statement is shaped so, is in `boothbridge.jobs.statements`; it runs on plain
psycopg (`boothbridge.db.raw`), the hot path's connections."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from psycopg.types.json import Jsonb

from boothbridge.db.raw import RawDb
from boothbridge.jobs import statements as sql
from boothbridge.jobs.model import ClaimedJob, JobRecord, JobWithResult, NewJob
from boothbridge.jobs.statements import CHANNEL_DONE, CHANNEL_NEW, attempt_errors_entry, completion_params
from boothbridge.media.ref import MediaRef

__all__ = ["CHANNEL_DONE", "CHANNEL_NEW", "Admission", "Claim", "JobQueue"]

_EXHAUSTED_MESSAGE = "the worker running the last attempt stopped responding"


@dataclass(frozen=True)
class Claim:
    """Claimed jobs, and whether claimable work was left behind (a provider at its limit, a row another
    transaction held): only then does a place freed by a finishing job call for another claim at once. New
    work needs no such hint: it comes with a NOTIFY."""

    jobs: list[ClaimedJob]
    work_left: bool


@dataclass(frozen=True)
class Admission:
    """What ingest learns in one read before storing a photo: the job to attach to, and the provider's backlog."""

    reusable: JobWithResult | None
    depth: int


class JobQueue:
    """Queue operations over the `jobs` table. `limits` maps provider id -> max parallel running jobs."""

    def __init__(self, db: RawDb, limits: Mapping[str, int], lease_sec: float) -> None:
        self.sql = db
        self.limits = dict(limits)
        self.lease_sec = lease_sec

    # ---- enqueue -------------------------------------------------------------------------------------

    async def admit(self, slot_id: str, sha256: str, provider_id: str, *, reuse: bool = True) -> Admission:
        """The job a re-post of this photo on this slot should attach to instead of paying twice (one still in
        flight, or one that succeeded and whose result has not expired; never when `reuse` is false), and the
        provider's backlog (queued and running booth jobs). One statement."""
        row = await self.sql.one(sql.ADMIT, {"slot": slot_id, "sha": sha256, "provider": provider_id, "reuse": reuse})
        assert row is not None  # the statement always returns one row
        return Admission(JobWithResult.from_read(row) if row["id"] is not None else None, int(row["depth"]))

    async def enqueue(
        self, job: NewJob, source: MediaRef, source_expires_at: datetime
    ) -> tuple[JobRecord | None, bool]:
        """Insert the job and its source media row and announce it, in one statement (so one round trip).

        Returns (job, True) when inserted. When an identical photo is already in flight on this slot (the
        partial unique index fires) nothing is inserted and (None, False) is returned: the caller attaches
        to the existing job and deletes the bytes it stored.
        """
        inserted = await self.sql.one(
            sql.ENQUEUE,
            {
                "id": job.id,
                "slot": job.slot_id,
                "provider": job.provider_id,
                "operation": job.operation_id,
                "settings": Jsonb(job.settings_json),
                "source": job.source_media_id,
                "sha": job.source_sha256,
                "max_attempts": job.max_attempts,
                "deadline": job.deadline_at,
                "fallback_at": job.booth_fallback_at,
                "meta": Jsonb(job.request_meta),
                "is_test": job.is_test,
                "m_key": source.storage_key,
                "m_mime": source.mime,
                "m_size": source.size_bytes,
                "m_sha": source.sha256,
                "m_expires": source_expires_at,
            },
        )
        if inserted is None:
            return None, False
        return JobRecord.from_row(inserted), True

    # ---- claim ---------------------------------------------------------------------------------------

    async def claim(self, owner: str, max_jobs: int, only_id: uuid.UUID | None = None) -> list[ClaimedJob]:
        """Take up to `max_jobs` claimable jobs for `owner`, honouring each provider's parallel limit, in
        arrival order; each comes with its source photo's media row.

        Expired leases are taken over here too: a job whose worker died becomes claimable when its lease
        runs out, and the takeover bumps the attempt (fencing the dead worker out). A job that has used up
        its attempts is failed instead of taken.
        """
        return (await self.claim_batch(owner, max_jobs, only_id)).jobs

    async def claim_batch(self, owner: str, max_jobs: int, only_id: uuid.UUID | None = None) -> Claim:
        """`claim`, also telling whether it left claimable work behind (see `Claim`)."""
        if max_jobs <= 0:
            return Claim([], work_left=True)
        async with self.sql.transaction() as conn:
            locked = await (await self.sql.run(conn, sql.LOCK_PROVIDERS_WITH_WORK, {"only_id": only_id})).fetchall()
            if not locked:
                return Claim([], work_left=False)
            providers = [row["provider_id"] for row in locked]
            params = {
                "providers": providers,
                "limits": [self.limits.get(p, 1) for p in providers],
                "only_id": only_id,
                "max_jobs": max_jobs,
                "owner": owner,
                "lease": self.lease_sec,
                "message": _EXHAUSTED_MESSAGE,
            }
            rows = await (await self.sql.run(conn, sql.TAKE, params)).fetchall()
        jobs = [ClaimedJob.from_claim(row) for row in rows]
        taken = Counter(job.provider_id for job in jobs)
        return Claim(jobs, work_left=any(row["ready"] > taken[row["provider_id"]] for row in locked))

    # ---- while running -------------------------------------------------------------------------------

    async def heartbeat(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Extend the lease; False means this attempt no longer holds the job (taken over or finished)."""
        row = await self.sql.one(sql.HEARTBEAT, {"id": job_id, "attempt": attempt, "lease": self.lease_sec})
        return row is not None

    # ---- finishing -----------------------------------------------------------------------------------

    async def complete(
        self, job_id: uuid.UUID, attempt: int, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> JobWithResult | None:
        """Record success, fenced by attempt number, and return the job as it now stands with its result; a
        stale attempt changes nothing and gets None. The job update, the result's media row and the NOTIFY are
        one statement."""
        params = {"id": job_id, "attempt": attempt, **completion_params(result, result_expires_at, cost)}
        row = await self.sql.one(sql.COMPLETE, params)
        return JobWithResult.completed(row, replace(result, expires_at=result_expires_at)) if row else None

    async def fail_attempt(
        self,
        job_id: uuid.UUID,
        attempt: int,
        code: str,
        message: str,
        retryable: bool,
        retry_in: float | None,
        details: Mapping[str, object] | None = None,
    ) -> str | None:
        """Record a failed attempt (with what is known about the failure's duration: `details`). With `retry_in`
        the job is requeued to run after that many seconds, otherwise it fails for good. Returns the new status,
        or None if this attempt was stale."""
        params = {
            "id": job_id,
            "attempt": attempt,
            "code": code,
            "message": message,
            "entry": attempt_errors_entry(attempt, code, message, retryable, details),
        }
        if retry_in is None:
            return "failed" if await self.sql.one(sql.FAIL, params) is not None else None
        row = await self.sql.one(sql.REQUEUE, {**params, "delay": retry_in})
        return "queued" if row is not None else None

    # ---- reading -------------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> JobWithResult | None:
        """The job, with its result's media row when it has a live one (one statement)."""
        row = await self.sql.one(sql.READ, {"id": job_id})
        return JobWithResult.from_read(row) if row else None

    async def ended_among(self, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Which of these jobs have reached a terminal state (the per-process fallback poll)."""
        return [row["id"] for row in await self.sql.all(sql.ENDED_AMONG, {"ids": job_ids})]
