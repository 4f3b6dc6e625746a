"""Lease expiries (a worker that died) are counted apart from provider failures, and a hand-back spends nothing:
the queue's rules, statement by statement."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from boothbridge.bootstrap import Container
from boothbridge.jobs.queue import JobQueue
from tests.integration.test_queue import expire_lease, job_row, new_job, result_ref


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def test_a_takeover_counts_an_expiry_and_gives_the_attempt_back(container: Container) -> None:
    queue = container.queue
    job = await new_job(container, max_attempts=1)
    await queue.claim("worker-a", 1)
    await expire_lease(container, job.id)

    [taken] = await queue.claim("worker-b", 1)

    assert (taken.attempt, taken.max_attempts, taken.lease_expiries) == (2, 2, 1)
    row = await job_row(container, job.id)
    assert (row.status, row.lease_owner, row.lease_expiries) == ("running", "worker-b", 1)
    [entry] = row.attempt_errors
    assert (entry["attempt"], entry["code"], entry["retryable"]) == (1, "lease_expired", True)


async def test_more_expiries_than_max_lease_expiries_fail_the_job(container: Container) -> None:
    queue = container.queue
    queue.max_lease_expiries = 2
    assert container.hub is not None
    job = await new_job(container)
    for n in range(3):
        [claimed] = await queue.claim(f"worker-{n}", 1)
        assert (claimed.attempt, claimed.lease_expiries) == (n + 1, n)
        await expire_lease(container, job.id)

    with container.hub.subscribe(job.id) as ended:
        assert await queue.claim("worker-3", 1) == []
        await asyncio.wait_for(ended.wait(), 5)  # waiters are told
    row = await job_row(container, job.id)
    assert (row.status, row.error_code, row.lease_expiries) == ("failed", "lease_expired", 3)
    assert row.lease_owner is None and row.lease_expires_at is None
    assert [e["code"] for e in row.attempt_errors] == ["lease_expired"] * 3


@pytest.mark.parametrize("settings_overrides", [{"retry_base_sec": 0.01, "retry_max_sec": 0.01}])
async def test_provider_failures_keep_max_attempts_after_a_worker_died(container: Container) -> None:
    queue = container.queue
    job = await new_job(container, max_attempts=2, settings_json={"fail_first": 10})
    await queue.claim("dead-worker", 1)
    await expire_lease(container, job.id)

    outcomes = []
    for _ in range(3):
        claimed = await queue.claim("worker", 1)
        if not claimed:
            await asyncio.sleep(0.05)
            claimed = await queue.claim("worker", 1)
        if not claimed:
            break
        outcomes.append((claimed[0].attempt, (await container.runner.run(claimed[0])).status))
        queue.release(claimed[0])

    # Two provider attempts (the limit), after the dead worker's, which did not count.
    assert outcomes == [(2, "queued"), (3, "failed")]
    row = await job_row(container, job.id)
    assert (row.status, row.error_code, row.lease_expiries) == ("failed", "upstream_unavailable", 1)


async def test_a_hand_back_spends_nothing_and_fences_the_attempt_out(container: Container) -> None:
    queue = container.queue
    other = JobQueue(container.pool, queue.limits, queue.lease_sec)  # another process
    job = await new_job(container)
    [mine] = await queue.claim("stopping", 1)
    assert await other.hand_back(job.id, 1) is False  # only the attempt's own worker hands it back

    assert await queue.hand_back(job.id, mine.attempt) is True

    row = await job_row(container, job.id)
    assert (row.status, row.attempt, row.lease_owner, row.lease_expires_at) == ("queued", 0, None, None)
    assert (row.lease_expiries, row.attempt_errors) == (0, [])
    assert row.run_after <= datetime.now(UTC)
    # Before anybody takes it again, the handed-back attempt can change nothing.
    assert await queue.heartbeat(job.id, 1) is False
    assert await queue.complete(job.id, 1, await result_ref(container), _later(), 0.1) is None

    [again] = await other.claim("successor", 1)
    assert (again.attempt, again.lease_expiries) == (1, 0)  # the same attempt again: nothing spent
    # The late finisher in the stopping worker is fenced out, though the number is the same.
    assert await queue.complete(job.id, 1, await result_ref(container), _later(), 0.1) is None
    assert await queue.fail_attempt(job.id, 1, "late", "late", True, 0.1) is None
    assert await queue.heartbeat(job.id, 1) is False
    assert (await job_row(container, job.id)).lease_owner == "successor"
    assert await other.complete(job.id, 1, await result_ref(container), _later(), 0.1) is not None


async def test_a_worker_never_takes_over_its_own_running_attempt(container: Container) -> None:
    queue = container.queue
    job = await new_job(container)
    [mine] = await queue.claim("w", 1)
    queue.hold(mine)  # its provider call runs here
    await expire_lease(container, job.id)  # our outage: the lease ran out meanwhile

    assert await queue.claim("w", 1) == []
    assert await queue.heartbeat(job.id, 1) is True  # re-asserted by the worker that runs it
    row = await job_row(container, job.id)
    assert (row.status, row.attempt, row.lease_expiries) == ("running", 1, 0)
    assert row.lease_expires_at > datetime.now(UTC)

    await expire_lease(container, job.id)
    queue.release(mine)  # it no longer runs it: a dead attempt like any other
    [again] = await queue.claim("w", 1)
    assert (again.attempt, again.lease_expiries) == (2, 1)
