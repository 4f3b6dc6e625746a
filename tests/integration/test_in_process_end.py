"""A job that ends in this process: its waiters are handed the job as the completion statement returned it (no
row read; the statement's own NOTIFY is held back meanwhile), and the worker loop claims again after a job ends
only when that can find something (the loop was full, or the last claim left work behind at a provider's limit),
not after every job."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.model import JobWithResult
from boothbridge.jobs.queue import CHANNEL_DONE, Claim, JobQueue
from boothbridge.jobs.waiting import wait_for_job_end, wait_subscribed
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


class RecordingEnds:
    """Stands in for the hub as the runner's `JobEnds`: records holds and hand-overs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, uuid.UUID, JobWithResult | None]] = []

    @contextlib.contextmanager
    def ending_here(self, job_id: uuid.UUID) -> Iterator[None]:
        self.events.append(("hold", job_id, None))
        yield
        self.events.append(("release", job_id, None))

    def job_ended(self, job_id: uuid.UUID, final: JobWithResult | None = None) -> None:
        self.events.append(("ended", job_id, final))


async def test_the_runner_hands_the_job_as_completed_to_the_hub(container: Container) -> None:
    ends = RecordingEnds()
    container.runner.ends = ends
    job = await new_job(container)
    [claimed] = await container.queue.claim("w", 1)
    outcome = await container.runner.run(claimed)
    assert outcome.status == "succeeded"

    assert [(kind, job_id) for kind, job_id, _ in ends.events] == [
        ("hold", job.id),
        ("ended", job.id),  # handed over while the NOTIFY is still held back
        ("release", job.id),
    ]
    final = ends.events[1][2]
    assert final is not None and final.status == "succeeded" and final.result is not None
    assert final == await container.queue.get(job.id)  # exactly what a read says now


async def test_a_waiter_of_a_job_completed_here_reads_nothing(container: Container) -> None:
    # The real hub and the real completion statement with its NOTIFY: the waiter, subscribed before the job
    # could end, is woken with the job in hand, however the NOTIFY and the statement's answer are ordered.
    hub = container.hub
    assert hub is not None
    counting = CountingQueue(container.queue)
    for _ in range(20):
        job = await new_job(container)
        [claimed] = await container.queue.claim("w", 1)
        with hub.subscribe(job.id) as woken:
            waiter = asyncio.create_task(
                wait_subscribed(
                    cast(JobQueue, counting), hub, job.id, woken, time.monotonic() + 20, 30, skip_first_read=True
                )
            )
            assert (await container.runner.run(claimed)).status == "succeeded"
            ended = await asyncio.wait_for(waiter, 5)
        assert ended.status == "succeeded" and ended.result is not None
    assert sum(counting.reads.values()) == 0


async def test_a_notify_held_back_by_a_completion_that_did_not_end_the_job_wakes_the_waiters(
    container: Container,
) -> None:
    hub = container.hub
    assert hub is not None
    job = await new_job(container)
    with hub.subscribe(job.id) as woken:
        with hub.ending_here(job.id):
            assert hub.holds(job.id)
            # Another process ends the job meanwhile (as an operator's cancel would): its NOTIFY is held back.
            async with container.engine.connect() as conn:
                await conn.execute(text("SELECT pg_notify(:ch, :id)"), {"ch": CHANNEL_DONE, "id": str(job.id)})
                await conn.commit()
            await asyncio.sleep(0.3)  # ample time for the NOTIFY to arrive
            assert not woken.is_set()
        # Our statement handed nothing over (fenced out, say): letting go wakes the waiters as the NOTIFY would.
        assert not hub.holds(job.id)
        assert woken.is_set()
        assert hub.final(job.id) is None


async def test_letting_go_without_a_notify_wakes_nobody(container: Container) -> None:
    hub = container.hub
    assert hub is not None
    job = await new_job(container)
    with hub.subscribe(job.id) as woken:
        with hub.ending_here(job.id):
            await asyncio.sleep(0.05)
        assert not woken.is_set()


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
