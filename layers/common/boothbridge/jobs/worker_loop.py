"""The in-process worker loop (local emulator, self-hosted): claim while there is room, run, repeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable

from boothbridge.jobs.model import ClaimedJob
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.runner import JobRunner

log = logging.getLogger(__name__)

# After the grace period, how long a stopping worker waits for its attempts to hand their jobs back (or to finish
# storing a result they already have) before it cancels them outright (their leases then run out).
HAND_BACK_WAIT_SEC = 1.5


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WorkerLoop:
    """Claims up to `concurrency` jobs at a time. Woken by NOTIFY bb_job_new through the hub, by a finished
    job when the place it frees can be used (the loop was full, or the last claim left work behind, e.g. at a
    provider's limit), by a scheduled retry coming due, and otherwise every `poll_sec` as a fallback."""

    def __init__(
        self,
        queue: JobQueue,
        runner: JobRunner,
        hub: NotificationHub | None,
        *,
        concurrency: int,
        poll_sec: float,
        owner: str | None = None,
    ) -> None:
        self.queue = queue
        self.runner = runner
        self.concurrency = concurrency
        self.max_claim = max(1, concurrency // 2)
        self.poll_sec = poll_sec
        self.owner = owner or worker_identity()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._work_left = False  # the last claim left claimable work behind
        self._loop_task: asyncio.Task[None] | None = None
        if hub is not None:
            hub.on_new_job(self.wake)

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="worker-loop")

    async def stop(self, grace_sec: float = 0.0) -> None:
        """A graceful stop: claim nothing more, let the attempts in flight finish for up to `grace_sec`, then hand
        back the jobs of those still calling their provider (requeued at once without spending an attempt, so
        another worker takes them straight away; see `JobRunner.hand_back`). Whatever has not ended
        HAND_BACK_WAIT_SEC after that is cancelled: its lease runs out and it is taken over as a lease expiry."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks and grace_sec > 0:
            log.info("worker %s stopping: %d attempt(s) get %.1f s to finish", self.owner, len(self._tasks), grace_sec)
            await asyncio.wait(set(self._tasks), timeout=grace_sec)
        if self._tasks:
            log.info("worker %s stopping: handing back %d job(s)", self.owner, len(self._tasks))
            self.runner.hand_back(set(self._tasks))
            await asyncio.wait(set(self._tasks), timeout=HAND_BACK_WAIT_SEC)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            # A claim takes at most half the places: the next claim then runs while the jobs of the previous one
            # finish (their completions go together, see jobs.completions), instead of after them.
            free = min(self.concurrency - len(self._tasks), self.max_claim)
            claimed = 0
            if free > 0:
                try:
                    batch = await self.queue.claim_batch(self.owner, free)
                    jobs, self._work_left = batch.jobs, batch.work_left
                except Exception:
                    log.exception("claiming jobs failed; retrying after %.1fs", self.poll_sec)
                    jobs = []
                claimed = len(jobs)
                for job in jobs:
                    task = asyncio.create_task(self._run_one(job), name=f"job-{job.id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if claimed and claimed == free:
                continue  # there may be more; loop again as soon as a place frees (that wakes us)
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation (stop()) that arrives just as
            # the wake-up does, and the loop then never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_sec):
                    await self._wake.wait()

    async def _run_one(self, job: ClaimedJob) -> None:
        try:
            outcome = await self.runner.run(job)
            if outcome.retry_in is not None:
                asyncio.get_running_loop().call_later(outcome.retry_in, self.wake)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s attempt %s: unexpected failure in the runner", job.id, job.attempt)
        finally:
            self.queue.release(job)
            # Its place is free from here on, before the loop looks again (the done callback would come later).
            was_full = len(self._tasks) >= self.concurrency
            self._tasks.discard(asyncio.current_task())
            if self._work_left or was_full:
                self.wake()


async def run_job_by_id(queue: JobQueue, runner: JobRunner, job_id: uuid.UUID, owner: str) -> str:
    """Run one job to an outcome in this invocation (the Lambda worker): claim it, run it, and keep
    retrying it here while its retries are due before the deadline. Returns the last status seen
    (`handed_back`: the invocation ran out of time and gave the job back to the queue)."""
    while True:
        jobs = await queue.claim(owner, 1, only_id=job_id)
        if not jobs:
            current = await queue.get(job_id)
            return current.status if current else "missing"
        try:
            outcome = await runner.run(jobs[0])
        finally:
            queue.release(jobs[0])
        if outcome.retry_in is None:
            return outcome.status
        await asyncio.sleep(outcome.retry_in)


async def drain_queue(
    queue: JobQueue,
    runner: JobRunner,
    owner: str,
    has_time: Callable[[], bool],
    handed_back: list[uuid.UUID] | None = None,
) -> int:
    """Claim and run queued jobs one at a time while `has_time()`; returns how many were run. A job handed back
    (the invocation ran out of time) ends the drain and is added to `handed_back`."""
    ran = 0
    while has_time():
        jobs = await queue.claim(owner, 1)
        if not jobs:
            break
        try:
            outcome = await runner.run(jobs[0])
        finally:
            queue.release(jobs[0])
        ran += 1
        if outcome.status == "handed_back":
            if handed_back is not None:
                handed_back.append(jobs[0].id)
            break
    return ran
