"""A job that ends in this process: its waiters are handed the job as the completion statement returned it (no
row read), and the worker loop claims again after a job ends only when that can find something (the loop was
full, or the last claim left work behind at a provider's limit), not after every job."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from boothbridge.container import Container
from boothbridge.jobs.model import JobWithResult
from boothbridge.jobs.queue import Claim, JobQueue
from boothbridge.jobs.waiting import wait_for_job_end
from boothbridge.jobs.worker_loop import WorkerLoop
from tests.fakes.sleepy import sleepy_catalog
from tests.integration.test_notifications import CountingQueue
from tests.integration.test_queue import new_job


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    limit = getattr(request, "param", 4)
    # A slow fallback poll: nothing here may be found by it.
    return {"providers_config": sleepy_catalog(tmp_path / "p.json", max_parallel_jobs=limit), "fallback_poll_sec": 30}


class CountingClaims:
    """The container's queue, counting claims (and their batches) made through `claim_batch`."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self.claims: list[Claim] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)

    async def claim_batch(self, owner: str, max_jobs: int, only_id: Any = None) -> Claim:
        batch = await self._queue.claim_batch(owner, max_jobs, only_id)
        self.claims.append(batch)
        return batch


async def _run_loop(c: Container, queue: CountingClaims, concurrency: int = 4) -> WorkerLoop:
    loop = WorkerLoop(cast(JobQueue, queue), c.runner, c.hub, concurrency=concurrency, poll_sec=30)
    await loop.start()
    return loop


async def test_a_waiter_takes_a_job_handed_over_in_process_without_a_read(container: Container) -> None:
    # The hand-over alone: no job really ends here, so neither the NOTIFY nor the fallback poll can wake the
    # waiter first (with a real ending the NOTIFY may win the race and cost one harmless read).
    assert container.hub is not None
    job = await new_job(container)
    counting = CountingQueue(container.queue)
    waiter = asyncio.create_task(
        wait_for_job_end(cast(JobQueue, counting), container.hub, job.id, time.monotonic() + 20, 30)
    )
    while counting.reads[job.id] < 1:  # its first read: not ended yet
        await asyncio.sleep(0.01)
    current = await container.queue.get(job.id)
    assert current is not None and not current.is_terminal
    final = replace(current, status="succeeded")  # as a completion statement would return it

    container.hub.job_ended(job.id, final)
    ended = await asyncio.wait_for(waiter, 5)

    assert ended is final
    assert counting.reads[job.id] == 1  # woken with the job in hand: no second read
    assert container.hub.final(job.id) is None  # dropped with the last subscription


async def test_the_runner_hands_the_job_as_completed_to_the_hub(container: Container) -> None:
    handed: list[tuple[uuid.UUID, JobWithResult | None]] = []
    container.runner.on_job_end = lambda job_id, final: handed.append((job_id, final))
    job = await new_job(container)
    [claimed] = await container.queue.claim("w", 1)
    outcome = await container.runner.run(claimed)
    assert outcome.status == "succeeded"

    [(job_id, final)] = handed
    assert job_id == job.id
    assert final is not None and final.status == "succeeded" and final.result is not None
    assert final == await container.queue.get(job.id)  # exactly what a read says now


async def test_no_claim_after_a_job_ends_when_nothing_was_left_behind(container: Container) -> None:
    queue = CountingClaims(container.queue)
    loop = await _run_loop(container, queue)
    try:
        await asyncio.sleep(0.2)
        claims_before = len(queue.claims)
        job = await new_job(container)  # its NOTIFY wakes the loop: one claim takes it
        while (await container.queue.get(job.id)).status != "succeeded":  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        made = queue.claims[claims_before:]
        assert [len(batch.jobs) for batch in made] == [1]
        assert made[0].work_left is False
    finally:
        await loop.stop()


@pytest.mark.parametrize("settings_overrides", [1], indirect=True)
async def test_a_job_ending_at_a_providers_limit_starts_the_next_at_once(container: Container) -> None:
    queue = CountingClaims(container.queue)
    first = await new_job(container, settings_json={"delay_sec": 0.3})
    second = await new_job(container)
    loop = await _run_loop(container, queue)
    try:
        started = time.monotonic()
        while (await container.queue.get(second.id)).status != "succeeded":  # type: ignore[union-attr]
            assert time.monotonic() - started < 5, "the second job waited for the poll"
            await asyncio.sleep(0.02)
        assert queue.claims[0].work_left is True  # the limit held the second one back
        assert (await container.queue.get(first.id)).status == "succeeded"  # type: ignore[union-attr]
    finally:
        await loop.stop()


async def test_a_full_loop_claims_again_when_a_place_frees(container: Container) -> None:
    queue = CountingClaims(container.queue)
    first = await new_job(container, settings_json={"delay_sec": 0.3})
    loop = await _run_loop(container, queue, concurrency=1)
    try:
        while (await container.queue.get(first.id)).status != "running":  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
        # Queued while the loop is full: its NOTIFY finds no free place; the end of the first must claim it.
        second = await new_job(container)
        started = time.monotonic()
        while (await container.queue.get(second.id)).status != "succeeded":  # type: ignore[union-attr]
            assert time.monotonic() - started < 5, "the second job waited for the poll"
            await asyncio.sleep(0.02)
    finally:
        await loop.stop()
