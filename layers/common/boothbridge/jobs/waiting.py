"""Waiting for a job's end: woken by the process's NotificationHub, with a slow fallback poll."""

from __future__ import annotations

import asyncio
import time
import uuid

from boothbridge.db.raw import DatabaseUnavailable
from boothbridge.jobs.model import JobWithResult
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue


async def wait_for_job_end(
    queue: JobQueue, hub: NotificationHub, job_id: uuid.UUID, deadline: float, fallback_poll_sec: float
) -> JobWithResult:
    """Return the job once it is terminal, or as it stands when `deadline` (time.monotonic) passes."""
    with hub.subscribe(job_id) as woken:
        return await wait_subscribed(queue, hub, job_id, woken, deadline, fallback_poll_sec)


async def wait_subscribed(
    queue: JobQueue,
    hub: NotificationHub,
    job_id: uuid.UUID,
    woken: asyncio.Event,
    deadline: float,
    fallback_poll_sec: float,
    *,
    skip_first_read: bool = False,
) -> JobWithResult:
    """The waiting loop for a caller already subscribed to `job_id`.

    `skip_first_read` is for a caller that subscribed before the job could possibly end (before inserting it):
    any ending since then has set `woken`, so the first read can wait for it. When the hub runs the
    per-process fallback poll, a waiter re-reads only when woken (or at its deadline). Each read brings the
    result's media row along (`JobWithResult.result`), so a waiter needs no second read to stream it.

    When the database blinks, a read is retried on a fresh connection (the READ statement is retry-safe); one
    that still fails (`DatabaseUnavailable`) does not end the wait: the waiter stays subscribed and reads again
    when woken (the hub wakes everyone once its LISTEN connection is back) or after `fallback_poll_sec` (an
    ending that woke it just before the failed read is not lost). At the deadline it answers with the job as
    last read; only if the database does not answer that last read either does `DatabaseUnavailable` reach
    the caller (503 with Retry-After, not a 500).
    """
    job: JobWithResult | None = None
    failed = False
    if not skip_first_read:
        job, failed = await _try_read(queue, hub, job_id, woken, job)
    while job is None or not job.is_terminal:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = remaining if hub.polls and not failed else min(remaining, fallback_poll_sec)
        # asyncio.timeout, not wait_for (which on 3.11 can swallow a cancellation that arrives with the wake-up).
        try:
            async with asyncio.timeout(timeout):
                await woken.wait()
        except TimeoutError:
            pass
        job, failed = await _try_read(queue, hub, job_id, woken, job)
    if job is not None and not failed:
        return job
    return await _read(queue, hub, job_id, woken)


async def _try_read(
    queue: JobQueue, hub: NotificationHub, job_id: uuid.UUID, woken: asyncio.Event, last: JobWithResult | None
) -> tuple[JobWithResult | None, bool]:
    """A read that does not end the wait when the database is unreachable: (the job, False), or (the job as
    last read, True)."""
    try:
        return await _read(queue, hub, job_id, woken), False
    except DatabaseUnavailable:
        return last, True


async def _read(queue: JobQueue, hub: NotificationHub, job_id: uuid.UUID, woken: asyncio.Event) -> JobWithResult:
    # Clear, then read: an ending signalled after the read sets the event again, so none is lost. A job that
    # ended in this process was handed over as it ended (`hub.final`): no read at all.
    woken.clear()
    job = hub.final(job_id) or await queue.get(job_id)
    if job is None:
        raise LookupError(f"job {job_id} vanished")
    return job
