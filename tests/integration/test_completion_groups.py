"""Completions in groups against real PostgreSQL: completions that arrive together share one statement, and each is
still fenced by its own attempt (a stale attempt in a group changes nothing, the others complete); a claim gives a
job of a provider the worker does not know its default limit of one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from tests.integration.test_queue import expire_lease, new_job, result_ref, scalar


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    from tests.fakes.sleepy import sleepy_catalog

    return {"providers_config": sleepy_catalog(tmp_path / "wide.json", max_parallel_jobs=100)}


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def test_completions_arriving_together_share_statements_and_each_is_recorded(container: Container) -> None:
    queue = container.queue
    await asyncio.gather(*(new_job(container) for _ in range(12)))
    claimed = await queue.claim("w", 12)
    assert len(claimed) == 12
    refs = [await result_ref(container) for _ in claimed]
    before = queue.completions.statements

    done = await asyncio.gather(
        *(queue.complete(job.id, job.attempt, ref, _later(), 0.5) for job, ref in zip(claimed, refs, strict=True))
    )

    assert all(d is not None for d in done)
    assert [d.id for d in done if d is not None] == [job.id for job in claimed]
    assert [d.result.id for d in done if d is not None and d.result is not None] == [ref.id for ref in refs]
    # Twelve completions submitted together: one statement.
    assert queue.completions.statements - before == 1
    rows = await scalar(
        container,
        "SELECT count(*) FROM jobs j JOIN media_objects m ON m.id = j.result_media_id AND m.job_id = j.id"
        " WHERE j.status = 'succeeded' AND m.kind = 'result' AND j.cost = 0.5",
    )
    assert rows == 12


async def test_a_stale_attempt_in_a_group_changes_nothing_and_the_others_complete(container: Container) -> None:
    queue = container.queue
    jobs = [await new_job(container) for _ in range(3)]
    first_claims = await queue.claim("worker-a", 3)
    assert len(first_claims) == 3
    await expire_lease(container, jobs[1].id)
    [taken] = await queue.claim("worker-b", 1)
    assert (taken.id, taken.attempt) == (jobs[1].id, 2)
    refs = [await result_ref(container) for _ in range(3)]

    # worker-a completes all three together; its attempt 1 of the taken-over job is fenced out.
    done = await asyncio.gather(
        *(queue.complete(job.id, job.attempt, ref, _later(), 1.0) for job, ref in zip(first_claims, refs, strict=True))
    )

    by_job = {job.id: d for job, d in zip(first_claims, done, strict=True)}
    assert by_job[jobs[1].id] is None
    assert by_job[jobs[0].id] is not None and by_job[jobs[2].id] is not None
    async with container.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT status, attempt, lease_owner FROM jobs WHERE id = :id"), {"id": jobs[1].id})
        ).one()
    assert tuple(row) == ("running", 2, "worker-b")
    stale_ref = refs[[job.id for job in first_claims].index(jobs[1].id)]
    assert await scalar(container, "SELECT count(*) FROM media_objects WHERE id = :id", id=stale_ref.id) == 0


async def test_two_completions_of_one_job_never_share_a_statement(container: Container) -> None:
    queue = container.queue
    job = await new_job(container)
    [claimed] = await queue.claim("w", 1)
    blocker = await new_job(container)  # a completion in flight makes the next two wait and arrive together
    [other] = await queue.claim("w", 1)
    assert other.id == blocker.id
    refs = [await result_ref(container) for _ in range(3)]

    results = await asyncio.gather(
        queue.complete(other.id, other.attempt, refs[0], _later(), 0.0),
        queue.complete(claimed.id, claimed.attempt, refs[1], _later(), 0.0),
        queue.complete(claimed.id, claimed.attempt, refs[2], _later(), 0.0),
    )

    assert results[0] is not None
    assert [r is not None for r in results[1:]] == [True, False]
    assert (
        await scalar(container, "SELECT count(*) FROM media_objects WHERE job_id = :id", id=job.id) == 2
    )  # source + 1
    assert await scalar(container, "SELECT result_media_id FROM jobs WHERE id = :id", id=job.id) == refs[1].id


async def test_a_provider_the_worker_does_not_know_gets_one_place(container: Container) -> None:
    queue = container.queue
    jobs = [await new_job(container) for _ in range(3)]
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET provider_id = 'unknown-provider' WHERE id = ANY(:ids)"),
            {"ids": [j.id for j in jobs]},
        )
    assert "unknown-provider" not in queue.limits

    first = await queue.claim_batch("w", 3)
    second = await queue.claim_batch("w", 3)

    assert [j.id for j in first.jobs] == [jobs[0].id]
    assert first.work_left
    assert (second.jobs, second.work_left) == ([], True)
    assert isinstance(jobs[0].id, uuid.UUID)


async def test_a_refused_value_fails_only_its_own_completion_in_a_group(container: Container) -> None:
    """numeric(12,6) cannot hold a cost of 1e7: that statement rolls back; the group's other completions, run again
    alone, are recorded."""
    import psycopg

    queue = container.queue
    await asyncio.gather(*(new_job(container) for _ in range(4)))
    claimed = await queue.claim("w", 4)
    refs = [await result_ref(container) for _ in claimed]
    costs = [0.5, 1e7, 0.5, 0.5]

    results = await asyncio.gather(
        *(
            queue.complete(job.id, job.attempt, ref, _later(), cost)
            for job, ref, cost in zip(claimed, refs, costs, strict=True)
        ),
        return_exceptions=True,
    )

    assert isinstance(results[1], psycopg.errors.NumericValueOutOfRange)
    assert all(r is not None and not isinstance(r, BaseException) for i, r in enumerate(results) if i != 1)
    ids = [j.id for j in claimed]
    query = "SELECT array_agg(status ORDER BY status) FROM jobs WHERE id = ANY(:ids)"
    statuses = await scalar(container, query, ids=ids)
    assert statuses == ["running", "succeeded", "succeeded", "succeeded"]
