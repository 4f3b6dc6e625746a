"""The queue's merged statements, each branch: `admit` (the job to attach to, and the backlog, in one read),
the waiter's read with the result's media row, the claim with the source's media row, and the claim failing a
dead worker's exhausted job with its NOTIFY sent from inside the same statement."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.db.engine import libpq_url
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.queue import CHANNEL_DONE
from tests.integration.test_queue import _unique_sha, enqueue, expire_lease, new_job, result_ref


async def _set(c: Container, sql: str, **params: object) -> None:
    async with c.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def _succeed(c: Container, job: JobRecord, *, result_expires: datetime) -> uuid.UUID:
    [claimed] = await c.queue.claim("w", 1, only_id=job.id)
    ref = await result_ref(c)
    assert await c.queue.complete(job.id, claimed.attempt, ref, result_expires, 0.5)
    return ref.id


# ---- admit -----------------------------------------------------------------------------------------------


async def test_admit_without_a_job_to_attach_to_counts_the_providers_backlog(container: Container) -> None:
    queue = container.queue
    await new_job(container)  # queued
    await new_job(container)
    await queue.claim("w", 1)  # one of them running
    finished = await new_job(container)
    await _succeed(container, finished, result_expires=datetime.now(UTC) + timedelta(hours=1))
    test_job, created, _ = await enqueue(container)
    assert created and test_job is not None
    await _set(container, "UPDATE jobs SET is_test = true WHERE id = :id", id=test_job.id)  # not booth work

    admission = await queue.admit("slot-001", _unique_sha(), "sleepy")
    assert admission.reusable is None
    assert admission.depth == 2  # queued + running booth jobs; not the finished one, not the test run
    assert (await queue.admit("slot-001", _unique_sha(), "other")).depth == 0


async def test_admit_attaches_to_the_job_in_flight_whatever_the_backlog(container: Container) -> None:
    sha = _unique_sha()
    job = await new_job(container, sha=sha)
    for _ in range(3):
        await new_job(container)

    admission = await container.queue.admit("slot-001", sha, "sleepy")
    assert admission.reusable is not None and admission.reusable.id == job.id
    assert admission.reusable.result is None  # no result yet
    assert admission.depth == 4  # reported, but a caller that attaches does not refuse on it
    # A test run never attaches, and another slot's photo is another job.
    assert (await container.queue.admit("slot-001", sha, "sleepy", reuse=False)).reusable is None
    assert (await container.queue.admit("slot-002", sha, "sleepy")).reusable is None


async def test_admit_returns_a_succeeded_job_with_its_live_result_and_not_an_expired_one(
    container: Container,
) -> None:
    sha = _unique_sha()
    job = await new_job(container, sha=sha)
    result_id = await _succeed(container, job, result_expires=datetime.now(UTC) + timedelta(hours=1))

    admission = await container.queue.admit("slot-001", sha, "sleepy")
    assert admission.reusable is not None and admission.reusable.id == job.id
    assert admission.reusable.status == "succeeded"
    assert admission.reusable.result is not None and admission.reusable.result.id == result_id
    assert admission.depth == 0

    await _set(
        container, "UPDATE media_objects SET expires_at = now() - interval '1 second' WHERE id = :id", id=result_id
    )
    assert (await container.queue.admit("slot-001", sha, "sleepy")).reusable is None


# ---- the waiter's read -----------------------------------------------------------------------------------


async def test_read_brings_the_live_result_row_and_none_once_it_expired(container: Container) -> None:
    job = await new_job(container)
    before = await container.queue.get(job.id)
    assert before is not None and before.status == "queued" and before.result is None

    result_id = await _succeed(container, job, result_expires=datetime.now(UTC) + timedelta(hours=1))
    done = await container.queue.get(job.id)
    assert done is not None and done.status == "succeeded" and done.result_media_id == result_id
    assert done.result is not None
    assert (done.result.id, done.result.kind, done.result.mime) == (result_id, "result", "image/jpeg")

    await _set(
        container, "UPDATE media_objects SET expires_at = now() - interval '1 second' WHERE id = :id", id=result_id
    )
    expired = await container.queue.get(job.id)
    assert expired is not None and expired.result_media_id == result_id and expired.result is None
    assert await container.queue.get(uuid.uuid4()) is None


# ---- the claim -------------------------------------------------------------------------------------------


async def test_claim_brings_the_live_source_row_and_none_once_it_expired(container: Container) -> None:
    job, _, source = await enqueue(container)
    assert job is not None
    [claimed] = await container.queue.claim("w", 1)
    assert claimed.id == job.id and claimed.source is not None
    assert (claimed.source.id, claimed.source.storage_key, claimed.source.kind) == (
        source.id,
        source.storage_key,
        "source",
    )

    await _set(
        container, "UPDATE media_objects SET expires_at = now() - interval '1 second' WHERE id = :id", id=source.id
    )
    await expire_lease(container, job.id)
    [again] = await container.queue.claim("w", 1)
    assert again.id == job.id and again.attempt == 2 and again.source is None


async def test_claim_hands_out_jobs_in_arrival_order(container: Container) -> None:
    jobs = [await new_job(container) for _ in range(4)]
    claimed = await container.queue.claim("w", 4)
    assert [j.id for j in claimed] == [j.id for j in jobs]


@pytest.mark.parametrize("settings_overrides", [{"fallback_poll_sec": 60.0}])
async def test_claim_failing_an_exhausted_job_sends_its_notify(container: Container) -> None:
    """The exhausted job is failed in a CTE of the claim statement whose output nobody reads; its NOTIFY (in that
    CTE's RETURNING list) must still be sent. Listened for directly, not through the hub's fallback poll."""
    container.queue.max_lease_expiries = 0  # its first expiry exhausts it
    job = await new_job(container, max_attempts=1)
    await container.queue.claim("w", 1)
    await expire_lease(container, job.id)
    other = await new_job(container)  # taken by the same claim, in the same statement

    async with await psycopg.AsyncConnection.connect(libpq_url(container.database_url), autocommit=True) as listener:
        await listener.execute(f"LISTEN {CHANNEL_DONE}")
        taken = await container.queue.claim("w", 5)
        assert [j.id for j in taken] == [other.id]

        async def first_payload() -> str:
            async for note in listener.notifies():
                return note.payload
            raise AssertionError("no notification")

        assert await asyncio.wait_for(first_payload(), 5) == str(job.id)
    row = await container.queue.get(job.id)
    assert row is not None and (row.status, row.error_code) == ("failed", "lease_expired")
