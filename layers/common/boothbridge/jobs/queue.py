"""The job table as a queue: enqueue, claim under per-provider limits, lease and heartbeat, fenced completion,
retries. The SQL, with why each statement is shaped so, is in `boothbridge.jobs.statements`; it runs on plain
psycopg (`boothbridge.db.raw`), the hot path's connections."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from boothbridge.db.raw import DatabaseUnavailable, RawDb, is_connection_trouble
from boothbridge.db.trouble import is_busy
from boothbridge.jobs import statements as sql
from boothbridge.jobs import step_statements as step_sql
from boothbridge.jobs.completions import CompletionGroups
from boothbridge.jobs.model import ClaimedJob, JobRecord, JobWithResult, NewJob
from boothbridge.jobs.statements import CHANNEL_DONE, CHANNEL_NEW, attempt_errors_entry, completion_params
from boothbridge.jobs.status import JobStatus
from boothbridge.media.ref import MediaRef

__all__ = ["CHANNEL_DONE", "CHANNEL_NEW", "DEFAULT_MAX_LEASE_EXPIRIES", "Admission", "Claim", "JobQueue"]

log = logging.getLogger(__name__)

DEFAULT_MAX_LEASE_EXPIRIES = 3
_EXHAUSTED_MESSAGE = "workers running this job stopped responding more often than MAX_LEASE_EXPIRIES allows"
_TAKEN_OVER_MESSAGE = "the worker running this attempt stopped responding; its lease ran out and the job was taken over"
# How long an attempt's outcome (its result already paid for and stored) is retried while the database is away,
# and how often: an outcome given up is an attempt lost, and the provider paid again by whoever takes the job.
OUTAGE_PATIENCE_SEC = 600.0
OUTAGE_RETRY_SEC = 1.0
# Each try of an outcome waits at most this long for a pooled connection: the pool gives up reconnecting after a
# few seconds and starts again for the next request that needs a connection, so a try that waited out a long
# outage must not hold on to its wait (it would find the database back only at the pool's own timeout).
OUTCOME_CHECKOUT_SEC = 3.0


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached: a lost connection, no connection in time, a server shutting down
    (which says nothing about who holds a job)."""
    return isinstance(exc, DatabaseUnavailable) or is_connection_trouble(exc)


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

    def __init__(
        self,
        db: RawDb,
        limits: Mapping[str, int],
        lease_sec: float,
        *,
        max_lease_expiries: int = DEFAULT_MAX_LEASE_EXPIRIES,
    ) -> None:
        self.sql = db
        self.limits = dict(limits)
        self.lease_sec = lease_sec
        # A job whose lease runs out more often than this fails as `lease_expired` (MAX_LEASE_EXPIRIES).
        self.max_lease_expiries = max_lease_expiries
        # The attempts claimed here, by job id, with their owner (a hand-back is fenced by it), and those whose
        # provider call this process runs (`hold`): the claim never takes one of those over, whatever its lease
        # says after an outage of ours. Both kept until `release`.
        self._claimed: dict[uuid.UUID, tuple[ClaimedJob, str]] = {}
        self._held: set[uuid.UUID] = set()
        # Attempts this process handed back: they may no longer heartbeat, complete or fail the job, even once
        # another claim has started it again under the same (restored) number.
        self._handed_back: set[tuple[uuid.UUID, int]] = set()
        self.outage_patience_sec = OUTAGE_PATIENCE_SEC
        self.outage_retry_sec = OUTAGE_RETRY_SEC
        # Completions arriving together share one statement and one commit (see `jobs.completions`).
        self.completions = CompletionGroups(self._complete_group)

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
                "pipeline": Jsonb(job.pipeline),
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
        # What this process runs under this owner is not claimable by it, whatever the lease says.
        mine = [job_id for job_id in self._held if self._claimed[job_id][1] == owner]
        params = {
            "only_id": only_id,
            "owner": owner,
            "mine": mine,
            "lease": self.lease_sec,
            # `ready` is counted up to one more than a claim takes: enough to tell whether work was left behind.
            "enough": max_jobs + 1,
            "providers": list(self.limits),
            "limits": list(self.limits.values()),
            "default_limit": 1,
            "max_jobs": max_jobs,
            "max_expiries": self.max_lease_expiries,
            "message": _EXHAUSTED_MESSAGE,
            "taken_message": _TAKEN_OVER_MESSAGE,
        }
        async with self.sql.connection() as conn:
            # One statement, one round trip, one transaction (see statements: the claim).
            rows = await (await self.sql.run(conn, sql.CLAIM, params, binary=True)).fetchall()
        jobs = [ClaimedJob.from_claim(row) for row in rows if row["id"] is not None]
        for job in jobs:
            self._claimed[job.id] = (job, owner)
            self._handed_back.discard((job.id, job.attempt))  # started again here: this attempt is current
        ready: dict[str, int] = json.loads(rows[0]["ready"]) if rows else {}
        taken = Counter(job.provider_id for job in jobs)
        return Claim(jobs, work_left=any(count > taken[provider] for provider, count in ready.items()))

    # ---- while running -------------------------------------------------------------------------------

    async def heartbeat(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Extend (or, after an outage, re-assert) the lease; False means the database answered that this attempt
        no longer holds the job (taken over, finished, cancelled, handed back). A database that cannot be reached
        raises (see `unreachable`): that says nothing about who holds the job."""
        if (job_id, attempt) in self._handed_back:
            return False
        row = await self.sql.one(sql.HEARTBEAT, {"id": job_id, "attempt": attempt, "lease": self.lease_sec})
        return row is not None

    def hold(self, job: JobRecord) -> None:
        """This process runs `job`'s attempt (its provider call starts): until `release`, no claim made here under
        the same owner takes it over, even once its lease has run out (an outage of ours)."""
        claimed = self._claimed.get(job.id)
        if claimed is not None and claimed[0].attempt == job.attempt:
            self._held.add(job.id)

    def release(self, job: JobRecord) -> None:
        """This process no longer runs `job`'s attempt (it ended, whatever became of it)."""
        claimed = self._claimed.get(job.id)
        if claimed is not None and claimed[0] is job:
            del self._claimed[job.id]
            self._held.discard(job.id)

    def held_here(self) -> list[uuid.UUID]:
        """The jobs whose attempts this process runs."""
        return list(self._held)

    async def hand_back(self, job_id: uuid.UUID, attempt: int) -> bool:
        """Give an attempt this process cannot finish back to the queue without spending it (requeued at once,
        its number restored, claimers told); from then on that attempt is fenced out here. False when it no
        longer held the job (finished, cancelled, taken over) or the database could not be reached (the lease
        then runs out and the job is taken over as a lease expiry)."""
        claimed = self._claimed.get(job_id)
        owner = claimed[1] if claimed is not None and claimed[0].attempt == attempt else None
        try:
            row = await self._outcome(sql.HAND_BACK, {"id": job_id, "attempt": attempt, "owner": owner})
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("job %s attempt %s could not be handed back: the database is unreachable", job_id, attempt)
            return False
        if row is None:
            return False
        self._handed_back.add((job_id, attempt))
        return True

    # ---- finishing -----------------------------------------------------------------------------------

    async def complete(
        self, job_id: uuid.UUID, attempt: int, result: MediaRef, result_expires_at: datetime, cost: float
    ) -> JobWithResult | None:
        """Record success, fenced by attempt number, and return the job as it now stands with its result; a
        stale attempt changes nothing and gets None. The job update, the result's media row and the NOTIFY are
        one statement."""
        if (job_id, attempt) in self._handed_back:
            return None
        params = {"id": job_id, "attempt": attempt, **completion_params(result, result_expires_at, cost)}
        # The result is stored and paid for: keep it for the job until the database is back (dropping it would let
        # the lease run out and the provider be called again).
        row, after_outage = await self._outcome_through_outage(
            sql.COMPLETE, params, "completion", first_try=self.completions.submit
        )
        if after_outage is None:
            return JobWithResult.completed(row, replace(result, expires_at=result_expires_at)) if row else None
        # The statement may have committed before its answer was lost: then the job is done, with this result.
        if after_outage.status == JobStatus.SUCCEEDED and after_outage.result_media_id == result.id:
            return after_outage
        return None

    async def _outcome(self, statement: LiteralString, params: Mapping[str, Any]) -> Any:
        """One try of an attempt's outcome statement (see OUTCOME_CHECKOUT_SEC); its row or None."""
        async with self.sql.connection(OUTCOME_CHECKOUT_SEC) as conn:
            return await (await self.sql.run(conn, statement, params)).fetchone()

    async def _complete_group(self, group: Sequence[Mapping[str, Any]]) -> list[Any]:
        """One try of several completions in one statement (`CompletionGroups`); the rows of the jobs completed."""
        async with self.sql.connection(OUTCOME_CHECKOUT_SEC) as conn:
            statement, params = sql.COMPLETE_MANY, sql.complete_many_params(group)
            return await (await self.sql.run(conn, statement, params, binary=True)).fetchall()

    async def _outcome_through_outage(
        self,
        statement: LiteralString,
        params: Mapping[str, Any],
        what: str,
        *,
        first_try: Callable[[Mapping[str, Any]], Awaitable[Any]] | None = None,
    ) -> tuple[Any, JobWithResult | None]:
        """Run an outcome statement of the attempt `params` name, retried while the database is away and the
        attempt still holds the job. Returns (its row or None, None) when it answered; (None, the job as re-read)
        when the job stopped being this attempt's running job meanwhile (the statement may have applied before its
        answer was lost, or another took the job)."""
        job_id, attempt = params["id"], params["attempt"]
        give_up = time.monotonic() + self.outage_patience_sec
        try_once = first_try
        while True:
            try:
                if try_once is not None:
                    return await try_once(params), None
                return await self._outcome(statement, params), None
            except Exception as exc:
                if not unreachable(exc) or time.monotonic() >= give_up:
                    raise
                log.warning(
                    "job %s attempt %s: the database is %s; %s retried",
                    job_id,
                    attempt,
                    "busy (no pooled connection came free)" if is_busy(exc) else "unreachable",
                    what,
                )
            try_once = None  # a retry goes alone
            await asyncio.sleep(self.outage_retry_sec)
            try:
                current = await self.get(job_id)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                continue
            if current is None or current.status != JobStatus.RUNNING or current.attempt != attempt:
                return None, current

    async def _fenced_outcome(self, statement: LiteralString, params: dict[str, Any]) -> bool:
        """Run a failure/retry statement of the attempt `params` name through an outage; True when it applied here
        (False too when it applied before its answer was lost, or the attempt no longer holds the job)."""
        row, _ = await self._outcome_through_outage(statement, params, "outcome")
        return row is not None

    async def move(self, statement: LiteralString, params: dict[str, Any]) -> bool:
        """Move the attempt's job to another step or alternative (`jobs.steps`; `statement` is a fenced move of
        `jobs.step_statements`), through an outage like a completion (the step's output is paid for). True when it
        applied, also when it did so before its answer was lost."""
        if (params["id"], params["attempt"]) in self._handed_back:
            return False
        row, after_outage = await self._outcome_through_outage(statement, params, "move to the next step")
        if after_outage is None:
            return row is not None
        return await self.sql.one(step_sql.MOVED, params) is not None

    async def mark_uploading(self, job_id: uuid.UUID, attempt: int) -> None:
        """The attempt is storing its image (the job detail's `uploading_image` phase); fenced like a heartbeat."""
        await self.sql.one(step_sql.UPLOADING, {"id": job_id, "attempt": attempt})

    async def fail_attempt(
        self,
        job_id: uuid.UUID,
        attempt: int,
        code: str,
        message: str,
        retryable: bool,
        retry_in: float | None,
        details: Mapping[str, object] | None = None,
    ) -> JobStatus | None:
        """Record a failed attempt (with what is known about the failure's duration: `details`). With `retry_in`
        the job is requeued to run after that many seconds, otherwise it fails for good. Returns the new status,
        or None if this attempt was stale."""
        if (job_id, attempt) in self._handed_back:
            return None
        params: dict[str, Any] = {
            "id": job_id,
            "attempt": attempt,
            "code": code,
            "message": message,
            "entry": attempt_errors_entry(attempt, code, message, retryable, details),
        }
        if retry_in is None:
            return JobStatus.FAILED if await self._fenced_outcome(sql.FAIL, params) else None
        requeued = await self._fenced_outcome(sql.REQUEUE, {**params, "delay": retry_in})
        return JobStatus.QUEUED if requeued else None

    # ---- reading -------------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> JobWithResult | None:
        """The job, with its result's media row when it has a live one (one statement)."""
        row = await self.sql.one(sql.READ, {"id": job_id})
        return JobWithResult.from_read(row) if row else None

    async def ended_among(self, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Which of these jobs have reached a terminal state (the per-process fallback poll)."""
        return [row["id"] for row in await self.sql.all(sql.ENDED_AMONG, {"ids": job_ids})]
