"""Waiting for a job's end: woken by the process's NotificationHub, with a slow fallback poll."""

from __future__ import annotations

import asyncio
import time
import uuid

from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue


async def wait_for_job_end(
    queue: JobQueue, hub: NotificationHub, job_id: uuid.UUID, deadline: float, fallback_poll_sec: float
) -> JobRecord:
    """Return the job once it is terminal, or as it stands when `deadline` (time.monotonic) passes."""
    with hub.subscribe(job_id) as woken:
        while True:
            # Clear, then read: a NOTIFY arriving after the read sets the event again, so none is lost.
            woken.clear()
            job = await queue.get(job_id)
            if job is None:
                raise LookupError(f"job {job_id} vanished")
            remaining = deadline - time.monotonic()
            if job.is_terminal or remaining <= 0:
                return job
            try:
                await asyncio.wait_for(woken.wait(), min(remaining, fallback_poll_sec))
            except TimeoutError:
                pass
