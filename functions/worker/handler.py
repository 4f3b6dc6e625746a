"""Worker entry points: `handler(event, context)` for Lambda, `python -m functions.worker` for a loop."""

from __future__ import annotations

import uuid
from typing import Any

from boothbridge.container import Container
from boothbridge.jobs.worker_loop import drain_queue, run_job_by_id, worker_identity
from boothbridge.lambda_runtime import HandlerRuntime

runtime = HandlerRuntime()
# Take another job only while at least this much of the invocation's time is left (a slow attempt's length).
DRAIN_RESERVE_SEC = 60.0


def _remaining_sec(context: Any) -> float:
    get = getattr(context, "get_remaining_time_in_millis", None)
    return get() / 1000 if callable(get) else 0.0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the job named by `event["job_id"]` (an asynchronous invoke from ingest or cleanup)."""
    try:
        job_id = uuid.UUID(str(event["job_id"]))
    except (KeyError, ValueError):
        return {"ok": False, "error": "event must carry a job_id (uuid)"}

    async def run(c: Container) -> dict[str, Any]:
        owner = worker_identity()
        status = await run_job_by_id(c.queue, c.runner, job_id, owner)
        # Then keep taking queued work while this invocation has time for a whole attempt: jobs that found
        # their provider full when they were invoked would otherwise wait for the next cleanup tick.
        extra = await drain_queue(c.queue, c.runner, owner, lambda: _remaining_sec(context) > DRAIN_RESERVE_SEC)
        return {"ok": True, "job_id": str(job_id), "status": status, "also_ran": extra}

    return runtime.run(run)
