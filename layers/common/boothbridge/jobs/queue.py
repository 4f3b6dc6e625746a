"""The job table as a queue. Every statement that matters is written out in SQL, with why it is shaped so.

Channels: `bb_job_new` (payload: job id) when work becomes claimable, `bb_job_done` (payload: job id) when a
job reaches a terminal state. NOTIFY runs inside the transaction that changes the row, so listeners are told
only after the change is visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from boothbridge.jobs.model import JOB_COLUMNS, JobRecord, NewJob
from boothbridge.media.service import MediaRef, MediaService

CHANNEL_NEW = "bb_job_new"
CHANNEL_DONE = "bb_job_done"

# Claimable: queued work whose time has come, and running work whose lease ran out (its worker died or hung).
_CLAIMABLE = "((status = 'queued' AND run_after <= now()) OR (status = 'running' AND lease_expires_at <= now()))"

# Which providers have claimable work (optionally: only the one job a Lambda worker was invoked for).
_PROVIDERS_WITH_WORK = text(
    f"SELECT DISTINCT provider_id FROM jobs WHERE {_CLAIMABLE} AND (CAST(:only_id AS uuid) IS NULL OR id = :only_id)"
)

# Serialises capacity decisions for one provider across all claimers (every process, every host): without it two
# claimers could both count one free place and both take it. Transaction-scoped, so it cannot leak. Every claimer
# takes its provider locks in sorted order, so claimers wait for each other but can never deadlock.
_PROVIDER_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(:provider))")

# A running job whose lease is still valid occupies one of its provider's places.
_RUNNING_BY_PROVIDER = text(
    """
    SELECT provider_id, count(*) AS running FROM jobs
    WHERE status = 'running' AND lease_expires_at > now() AND provider_id = ANY(:providers)
    GROUP BY provider_id
    """
)

# The oldest claimable jobs, at most `free` of each provider (so one provider's backlog can never hide another
# provider's work), in arrival order across providers.
_CANDIDATE_IDS = text(
    """
    SELECT id FROM (
        SELECT j.id, j.run_after, j.created_at, f.free,
               row_number() OVER (PARTITION BY j.provider_id ORDER BY j.run_after, j.created_at) AS place
        FROM jobs j
        JOIN unnest(CAST(:providers AS text[]), CAST(:free AS int[])) AS f(provider_id, free) USING (provider_id)
        WHERE ((j.status = 'queued' AND j.run_after <= now())
               OR (j.status = 'running' AND j.lease_expires_at <= now()))
          AND (CAST(:only_id AS uuid) IS NULL OR j.id = :only_id)
    ) ranked
    WHERE place <= free
    ORDER BY run_after, created_at
    LIMIT :max_jobs
    """
)

# Lock the chosen rows. SKIP LOCKED: a row another transaction holds (a cancel, a cleanup) is left for later
# rather than waited for; the claimable condition is re-checked on the locked row.
_LOCK_CANDIDATES = text(
    f"""
    SELECT {JOB_COLUMNS} FROM jobs
    WHERE id = ANY(:ids) AND {_CLAIMABLE}
    ORDER BY run_after, created_at
    FOR UPDATE SKIP LOCKED
    """
)

# Taking a job: a new attempt number is the fencing token. Whoever held the previous attempt can no longer
# heartbeat, complete or fail the job (all those statements match on the attempt number).
_TAKE = text(
    f"""
    UPDATE jobs
    SET status = 'running', attempt = attempt + 1, lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease), started_at = coalesce(started_at, now()),
        updated_at = now()
    WHERE id = :id
    RETURNING {JOB_COLUMNS}
    """
)


class JobQueue:
    """Queue operations over the `jobs` table. `limits` maps provider id -> max parallel running jobs."""

    def __init__(self, engine: AsyncEngine, limits: Mapping[str, int], lease_sec: float) -> None:
        self.engine = engine
        self.limits = dict(limits)
        self.lease_sec = lease_sec

    # ---- enqueue -------------------------------------------------------------------------------------

    async def find_reusable(self, slot_id: str, sha256: str) -> JobRecord | None:
        """A job for the same photo on the same slot that a re-post should attach to instead of paying twice:
        one still in flight, or one that succeeded and whose result has not expired."""
        async with self.engine.connect() as conn:
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
        """Insert the source media row and the job in one transaction and announce it.

        Returns (job, True) when inserted. When an identical photo is already in flight on this slot (the
        partial unique index fires) nothing is inserted and (None, False) is returned: the caller attaches
        to the existing job and deletes the bytes it stored.
        """
        async with self.engine.begin() as conn:
            inserted = (
                await conn.execute(
                    text(
                        f"""
                        INSERT INTO jobs (id, slot_id, status, provider_id, operation_id, settings_json,
                                          source_media_id, source_sha256, max_attempts, deadline_at,
                                          request_meta, is_test)
                        VALUES (:id, :slot, 'queued', :provider, :operation, :settings, :source, :sha,
                                :max_attempts, :deadline, :meta, :is_test)
                        ON CONFLICT (slot_id, source_sha256)
                            WHERE status IN ('queued', 'running', 'waiting_provider') AND NOT is_test
                            DO NOTHING
                        RETURNING {JOB_COLUMNS}
                        """
                    ).bindparams(bindparam("settings", type_=JSONB), bindparam("meta", type_=JSONB)),
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
                    },
                )
            ).one_or_none()
            if inserted is None:
                await conn.rollback()
                return None, False
            await MediaService.insert_row(conn, source, source_expires_at, job.id)
            await _notify(conn, CHANNEL_NEW, job.id)
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
        claimed: list[JobRecord] = []
        async with self.engine.begin() as conn:
            providers = sorted((await conn.execute(_PROVIDERS_WITH_WORK, {"only_id": only_id})).scalars())
            if not providers:
                return []
            for provider in providers:
                await conn.execute(_PROVIDER_LOCK, {"provider": provider})
            running = {
                row.provider_id: row.running
                for row in await conn.execute(_RUNNING_BY_PROVIDER, {"providers": providers})
            }
            free = {p: max(self.limits.get(p, 1) - running.get(p, 0), 0) for p in providers}
            open_providers = [p for p in providers if free[p] > 0]
            if not open_providers:
                return []
            ids = (
                (
                    await conn.execute(
                        _CANDIDATE_IDS,
                        {
                            "providers": open_providers,
                            "free": [free[p] for p in open_providers],
                            "only_id": only_id,
                            "max_jobs": max_jobs,
                        },
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            for row in await conn.execute(_LOCK_CANDIDATES, {"ids": list(ids)}):
                cand = JobRecord.from_row(row)
                if cand.status == "running" and cand.attempt >= cand.max_attempts:
                    entry = {
                        "attempt": cand.attempt,
                        "code": "lease_expired",
                        "retryable": False,
                        "message": "the worker running this attempt stopped responding",
                        "at": datetime.now(UTC).isoformat(),
                    }
                    await self._fail_in_tx(
                        conn,
                        cand.id,
                        cand.attempt,
                        "lease_expired",
                        "the worker running the last attempt stopped responding",
                        entry,
                    )
                    continue
                taken = (await conn.execute(_TAKE, {"id": cand.id, "owner": owner, "lease": self.lease_sec})).one()
                claimed.append(JobRecord.from_row(taken))
        return claimed

    # ---- while running -------------------------------------------------------------------------------

    async def heartbeat(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Extend the lease; False means this attempt no longer holds the job (taken over or finished)."""
        async with self.engine.begin() as conn:
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
        """Record success, fenced by attempt number: a stale attempt changes nothing and gets False."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        UPDATE jobs
                        SET status = 'succeeded', result_media_id = :result, cost = :cost,
                            finished_at = now(), updated_at = now(), lease_owner = NULL,
                            lease_expires_at = NULL, error_code = NULL, error_message = NULL
                        WHERE id = :id AND attempt = :attempt AND status = 'running'
                        RETURNING id
                        """
                    ),
                    {"id": job_id, "attempt": attempt, "result": result.id, "cost": cost},
                )
            ).one_or_none()
            if row is None:
                await conn.rollback()
                return False
            await MediaService.insert_row(conn, result, result_expires_at, job_id)
            await _notify(conn, CHANNEL_DONE, job_id)
        return True

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
        entry = {
            "attempt": attempt,
            "code": code,
            "message": message,
            "retryable": retryable,
            "at": datetime.now(UTC).isoformat(),
        }
        async with self.engine.begin() as conn:
            if retry_in is None:
                ok = await self._fail_in_tx(conn, job_id, attempt, code, message, entry)
                return "failed" if ok else None
            row = (
                await conn.execute(
                    text(
                        """
                        UPDATE jobs
                        SET status = 'queued', run_after = now() + make_interval(secs => :delay),
                            lease_owner = NULL, lease_expires_at = NULL, error_code = :code,
                            error_message = :message, attempt_errors = attempt_errors || :entry,
                            updated_at = now()
                        WHERE id = :id AND attempt = :attempt AND status = 'running'
                        RETURNING id
                        """
                    ).bindparams(bindparam("entry", type_=JSONB)),
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
            if row is None:
                return None
            await _notify(conn, CHANNEL_NEW, job_id)
        return "queued"

    async def _fail_in_tx(
        self,
        conn: AsyncConnection,
        job_id: uuid.UUID,
        attempt: int,
        code: str,
        message: str,
        entry: dict[str, Any] | None = None,
    ) -> bool:
        row = (
            await conn.execute(
                text(
                    """
                    UPDATE jobs
                    SET status = 'failed', error_code = :code, error_message = :message,
                        attempt_errors = attempt_errors || :entry, finished_at = now(), updated_at = now(),
                        lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = :id AND attempt = :attempt AND status IN ('running', 'queued')
                    RETURNING id
                    """
                ).bindparams(bindparam("entry", type_=JSONB)),
                {
                    "id": job_id,
                    "attempt": attempt,
                    "code": code,
                    "message": message,
                    "entry": [entry] if entry else [],
                },
            )
        ).one_or_none()
        if row is not None:
            await _notify(conn, CHANNEL_DONE, job_id)
        return row is not None

    # ---- reading -------------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> JobRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :id"), {"id": job_id})
            ).one_or_none()
        return JobRecord.from_row(row) if row else None

    async def next_run_after(self) -> datetime | None:
        """When the earliest delayed retry becomes claimable (lets an idle worker sleep exactly that long)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(text("SELECT min(run_after) FROM jobs WHERE status = 'queued'"))).scalar()


async def _notify(conn: AsyncConnection, channel: str, job_id: uuid.UUID) -> None:
    await conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": str(job_id)})
