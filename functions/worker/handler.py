"""Worker entry points: `handler(event, context)` for Lambda, `python -m functions.worker` for a loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from boothbridge.bootstrap import Container
from boothbridge.jobs.runner import JobRunner
from boothbridge.jobs.worker_loop import drain_queue, run_job_by_id, worker_identity
from boothbridge.platform.lambda_loop import HandlerRuntime

log = logging.getLogger(__name__)

runtime = HandlerRuntime()
# Take another job only while at least this much of the invocation's time is left (a slow attempt's length).
DRAIN_RESERVE_SEC = 60.0
# This long before the function's own timeout an attempt still calling its provider is handed back (requeued at
# once without spending an attempt, and another invocation asked for): a timed-out invocation would leave its
# job to wait out the lease and count it as a worker that died.
HAND_BACK_RESERVE_SEC = 5.0


def _remaining_sec(context: Any) -> float:
    get = getattr(context, "get_remaining_time_in_millis", None)
    return get() / 1000 if callable(get) else 0.0


async def _hand_back_before_timeout(runner: JobRunner, context: Any, work: asyncio.Task[Any]) -> None:
    """Hand back `work`'s attempt HAND_BACK_RESERVE_SEC before the invocation's time is up (no context: never)."""
    if not callable(getattr(context, "get_remaining_time_in_millis", None)):
        return
    while (left := _remaining_sec(context) - HAND_BACK_RESERVE_SEC) > 0:
        await asyncio.sleep(min(left, 1.0))
    log.warning("the invocation's time is nearly up: handing its job back")
    runner.hand_back([work])


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the job named by `event["job_id"]` (an asynchronous invoke from ingest or cleanup)."""
    try:
        job_id = uuid.UUID(str(event["job_id"]))
    except (KeyError, ValueError):
        return {"ok": False, "error": "event must carry a job_id (uuid)"}

    async def run(c: Container) -> dict[str, Any]:
        owner = worker_identity()
        handed_back: list[uuid.UUID] = []
        me = asyncio.current_task()
        assert me is not None
        watchdog = asyncio.create_task(_hand_back_before_timeout(c.runner, context, me))
        try:
            status = await run_job_by_id(c.queue, c.runner, job_id, owner)
            if status == "handed_back":
                handed_back.append(job_id)
                extra = 0
            else:
                # Then keep taking queued work while this invocation has time for a whole attempt: jobs that found
                # their provider full when they were invoked would otherwise wait for the next cleanup tick.
                extra = await drain_queue(
                    c.queue, c.runner, owner, lambda: _remaining_sec(context) > DRAIN_RESERVE_SEC, handed_back
                )
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        for handed in handed_back:  # another invocation takes it at once (the dispatcher never raises)
            await c.dispatcher.dispatch(handed)
        result: dict[str, Any] = {"ok": True, "job_id": str(job_id), "status": status, "also_ran": extra}
        if handed_back:
            result["handed_back"] = [str(h) for h in handed_back]
        return result

    return runtime.run(run, context)
