"""Worker entry points: `handler(event, context)` for Lambda, `python -m functions.worker` for a loop."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from boothbridge.container import Container, build_container
from boothbridge.jobs.worker_loop import run_job_by_id, worker_identity
from boothbridge.settings import Settings

_container: Container | None = None
_event_loop: asyncio.AbstractEventLoop | None = None


async def _get_container() -> Container:
    global _container
    if _container is None:
        _container = await build_container(Settings(), listen=False)
    return _container


async def _handle(event: dict[str, Any]) -> dict[str, Any]:
    try:
        job_id = uuid.UUID(str(event["job_id"]))
    except (KeyError, ValueError):
        return {"ok": False, "error": "event must carry a job_id (uuid)"}
    c = await _get_container()
    status = await run_job_by_id(c.queue, c.runner, job_id, worker_identity())
    return {"ok": True, "job_id": str(job_id), "status": status}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the job named by `event["job_id"]` (an asynchronous invoke from ingest or cleanup)."""
    loop = _loop()
    return loop.run_until_complete(_handle(event))


def _loop() -> asyncio.AbstractEventLoop:
    # One loop for the life of the execution environment: the container's connections are bound to it.
    global _event_loop
    if _event_loop is None or _event_loop.is_closed():
        _event_loop = asyncio.new_event_loop()
    return _event_loop
