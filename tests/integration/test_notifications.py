"""The NotificationHub and wait_for_job_end: NOTIFY wakes waiters fast (no reliance on the fallback poll),
one LISTEN connection serves many waiters, a dropped connection wakes everyone and reconnects, and no wakeup
is lost between reading the row and waiting."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.model import JobRecord, NewJob
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.waiting import wait_for_job_end
from tests.fakes.sleepy import sleepy_catalog
from tests.support.booth import jpeg

PHOTO = jpeg(32, 24)
FALLBACK_SEC = 30.0  # far beyond every wait below: a waiter that returns in time was woken by a NOTIFY


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    # Room for hundreds of running sleepy jobs, so a test can claim all of its jobs at once.
    return {"providers_config": sleepy_catalog(tmp_path / "wide.json", max_parallel_jobs=1000)}


class CountingQueue:
    """Stands in for JobQueue in wait_for_job_end: counts row reads per job, optionally runs a hook after one."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.reads: Counter[uuid.UUID] = Counter()
        self.after_read: Callable[[uuid.UUID, int], Awaitable[None]] | None = None

    async def get(self, job_id: uuid.UUID) -> JobRecord | None:
        job = await self.queue.get(job_id)
        self.reads[job_id] += 1
        if self.after_read is not None:
            await self.after_read(job_id, self.reads[job_id])
        return job


def _hub(c: Container) -> NotificationHub:
    assert c.hub is not None
    return c.hub


async def new_job(c: Container) -> JobRecord:
    source = await c.media.write_bytes("source", PHOTO, "image/jpeg")
    now = datetime.now(UTC)
    job, created = await c.queue.enqueue(
        NewJob(
            id=uuid.uuid4(),
            slot_id="slot-001",
            provider_id="sleepy",
            operation_id="echo",
            settings_json={},
            source_media_id=source.id,
            source_sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
            max_attempts=3,
            deadline_at=now + timedelta(seconds=120),
            request_meta={},
        ),
        source,
        now + timedelta(minutes=10),
    )
    assert created and job is not None
    return job


async def finish(c: Container, job: JobRecord, succeed: bool = True) -> None:
    """Claim the job and end it (success with a stored result, or a permanent failure)."""
    [claimed] = await c.queue.claim("notify-test", 1, only_id=job.id)
    if succeed:
        ref = await c.media.write_bytes("result", PHOTO, "image/jpeg")
        assert await c.queue.complete(job.id, claimed.attempt, ref, datetime.now(UTC) + timedelta(hours=1), 0.0)
    else:
        assert await c.queue.fail_attempt(job.id, claimed.attempt, "upstream_rejected", "no", False, None)


def start_waiter(
    c: Container, queue: CountingQueue, job_id: uuid.UUID, within: float = 20.0
) -> asyncio.Task[JobRecord]:
    deadline = time.monotonic() + within
    return asyncio.create_task(wait_for_job_end(cast(JobQueue, queue), _hub(c), job_id, deadline, FALLBACK_SEC))


async def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Poll `check` until true; returns how long it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def listen_backends(c: Container) -> int:
    async with c.engine.connect() as conn:
        n: int = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()"
                )
            )
        ).scalar_one()
    return n


async def terminate_listen_backends(c: Container) -> int:
    """End the LISTEN connection's backend from another connection (what a server restart does to it); returns
    how many backends were terminated."""
    async with c.engine.connect() as conn:
        n: int = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()"
                )
            )
        ).scalar_one()
    return n


async def backends(c: Container) -> int:
    async with c.engine.connect() as conn:
        n: int = (
            await conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"))
        ).scalar_one()
    return n


async def test_completion_notify_wakes_a_waiter_quickly(container: Container) -> None:
    hub = _hub(container)
    queue = CountingQueue(container.queue)
    job = await new_job(container)
    waiter = start_waiter(container, queue, job.id)
    await eventually(lambda: queue.reads[job.id] == 1, what="the waiter's first read")
    await asyncio.sleep(0.2)  # let it block on the event
    assert not waiter.done()
    connects = hub.connects

    started = time.monotonic()
    await finish(container, job)
    result = await asyncio.wait_for(waiter, 5)
    elapsed = time.monotonic() - started

    assert result.status == "succeeded" and result.result_media_id is not None
    # Far below the fallback poll (the reads below prove no poll ran); no tight bound: a loaded machine flakes one.
    assert elapsed < FALLBACK_SEC / 3, f"woken after {elapsed:.3f}s"
    assert queue.reads[job.id] == 2  # one read before waiting, one after the NOTIFY: no polling involved
    assert hub.connects == connects  # not a reconnect's wake-all either
    assert hub.waiting == 0  # the subscription is gone once the wait returns


async def test_many_waiters_share_one_listen_connection(container: Container) -> None:
    hub = _hub(container)
    queue = CountingQueue(container.queue)
    jobs = await asyncio.gather(*(new_job(container) for _ in range(200)))
    waiters = [start_waiter(container, queue, job.id) for job in jobs]
    await eventually(lambda: hub.waiting == 200 and len(queue.reads) == 200, what="200 subscribed waiters")

    assert hub.listen_connections == 1
    assert await listen_backends(container) == 1
    # The waiters borrow pooled connections only to read rows; nothing holds a connection per waiter.
    pool = container.settings.db_pool_size
    assert await backends(container) <= 2 * pool + 2

    started = time.monotonic()
    for n, job in enumerate(jobs):
        await finish(container, job, succeed=n % 10 == 0)
    results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    elapsed = time.monotonic() - started

    assert {r.id for r in results} == {j.id for j in jobs}
    assert Counter(r.status for r in results) == {"succeeded": 20, "failed": 180}
    assert elapsed < FALLBACK_SEC / 3
    assert max(queue.reads.values()) < 5  # woken per job, not re-polling in a loop
    assert hub.listen_connections == 1
    assert await listen_backends(container) == 1
    assert hub.waiting == 0


async def test_dropped_connection_wakes_all_waiters_and_reconnects(container: Container) -> None:
    hub = _hub(container)
    queue = CountingQueue(container.queue)
    jobs = [await new_job(container) for _ in range(5)]
    waiters = [start_waiter(container, queue, job.id) for job in jobs]
    await eventually(lambda: all(queue.reads[j.id] == 1 for j in jobs), what="first reads")
    connects = hub.connects
    assert connects == 1

    # A real fault, as a server restart or a network cut looks to the hub: its backend is terminated from outside.
    assert await terminate_listen_backends(container) == 1

    # Every waiter re-reads its row at once (long before the fallback poll); none of the jobs ended, so
    # every waiter keeps waiting.
    took = await eventually(lambda: all(queue.reads[j.id] >= 2 for j in jobs), what="wake-all after the drop")
    assert took < 2.0
    assert not any(w.done() for w in waiters)
    await eventually(lambda: hub.connects == connects + 1 and hub.listen_connections == 1, what="the reconnect")
    await eventually(lambda: all(queue.reads[j.id] >= 3 for j in jobs), what="wake-all after the reconnect")
    for _ in range(200):  # the closed backend may take a moment to leave pg_stat_activity
        if await listen_backends(container) == 1:
            break
        await asyncio.sleep(0.01)
    assert await listen_backends(container) == 1

    # NOTIFYs arrive over the new connection: one job's end wakes exactly its waiter, promptly.
    reads_before = dict(queue.reads)
    started = time.monotonic()
    await finish(container, jobs[0])
    first = await asyncio.wait_for(waiters[0], 5)
    assert first.status == "succeeded"
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.1)
    assert not any(w.done() for w in waiters[1:])
    assert all(queue.reads[j.id] == reads_before[j.id] for j in jobs[1:])

    for job in jobs[1:]:
        await finish(container, job, succeed=False)
    rest = await asyncio.wait_for(asyncio.gather(*waiters[1:]), 5)
    assert [r.status for r in rest] == ["failed"] * 4
    assert hub.connects == connects + 1


async def test_no_lost_wakeup_when_the_job_ends_right_after_the_read(container: Container) -> None:
    hub = _hub(container)
    queue = CountingQueue(container.queue)
    job = await new_job(container)

    async def end_it_after_first_read(job_id: uuid.UUID, nth: int) -> None:
        if nth == 1:
            # The row just read says "queued"; the job now ends and its NOTIFY is dispatched before the
            # waiter starts to wait on its event.
            await finish(container, job)
            await asyncio.sleep(0.3)

    queue.after_read = end_it_after_first_read
    started = time.monotonic()
    result = await asyncio.wait_for(
        wait_for_job_end(cast(JobQueue, queue), hub, job.id, time.monotonic() + 20, FALLBACK_SEC), 3
    )

    assert result.status == "succeeded"
    assert queue.reads[job.id] == 2
    assert time.monotonic() - started < 1.0


async def test_subscription_made_before_the_end_sees_it(container: Container) -> None:
    hub = _hub(container)
    job = await new_job(container)
    other = await new_job(container)
    with hub.subscribe(job.id) as woken, hub.subscribe(other.id) as other_woken:
        assert not woken.is_set()
        await finish(container, job)
        await asyncio.wait_for(woken.wait(), 2)
        await asyncio.sleep(0.1)
        assert not other_woken.is_set()  # only the ended job's subscribers are woken


async def test_already_finished_job_returns_without_waiting(container: Container) -> None:
    queue = CountingQueue(container.queue)
    job = await new_job(container)
    await finish(container, job, succeed=False)
    started = time.monotonic()
    result = await wait_for_job_end(cast(JobQueue, queue), _hub(container), job.id, time.monotonic() + 20, FALLBACK_SEC)
    assert result.status == "failed"
    assert queue.reads[job.id] == 1
    assert time.monotonic() - started < 0.5


async def test_a_job_that_ends_without_a_notify_is_found_by_the_process_poll(container: Container) -> None:
    """The per-process fallback poll (one query for all waiting jobs) wakes a waiter whose job ended silently."""
    hub = _hub(container)
    assert hub.polls
    jobs = [await new_job(container) for _ in range(3)]
    queue = CountingQueue(container.queue)
    waiters = [start_waiter(container, queue, job.id) for job in jobs]
    await eventually(lambda: hub.waiting == 3, what="three waiters subscribed")
    async with container.engine.begin() as conn:  # ends the first job with no NOTIFY at all
        await conn.execute(text("UPDATE jobs SET status = 'failed' WHERE id = :id"), {"id": jobs[0].id})
    started = time.monotonic()
    done = await asyncio.wait_for(waiters[0], 5)
    assert done.status == "failed"
    # Woken by the poll (every fallback_poll_sec = 1 s in tests), long before the waiter's own 30 s fallback.
    assert time.monotonic() - started < 2.5
    assert not waiters[1].done() and not waiters[2].done()
    assert queue.reads[jobs[1].id] == 1  # the others were not re-read one by one
    for task in waiters[1:]:
        task.cancel()
    await asyncio.gather(*waiters[1:], return_exceptions=True)
