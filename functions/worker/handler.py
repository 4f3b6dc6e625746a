"""Worker entry points: `handler(event, context)` for Lambda, `python -m functions.worker` for a loop."""

from __future__ import annotations

import uuid
from typing import Any

from boothbridge.container import Container
from boothbridge.jobs.worker_loop import run_job_by_id, worker_identity
from boothbridge.lambda_runtime import HandlerRuntime

runtime = HandlerRuntime()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the job named by `event["job_id"]` (an asynchronous invoke from ingest or cleanup)."""
    try:
        job_id = uuid.UUID(str(event["job_id"]))
    except (KeyError, ValueError):
        return {"ok": False, "error": "event must carry a job_id (uuid)"}

    async def run(c: Container) -> dict[str, Any]:
        status = await run_job_by_id(c.queue, c.runner, job_id, worker_identity())
        return {"ok": True, "job_id": str(job_id), "status": status}

    return runtime.run(run)
