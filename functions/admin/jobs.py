"""Job endpoints (SPEC §6): list, detail, a live status stream (Server-Sent Events) and cancel.

The stream (`GET /api/jobs/{id}/events`, `text/event-stream`):

    retry: 1000

    event: status
    data: {"status": "queued", "attempt": 0, "at": "2025-01-09T12:00:00+00:00", "error": null}

    event: status
    data: {"status": "running", "attempt": 1, ...}

    : keep-alive

    event: status
    data: {"status": "succeeded", "attempt": 1, ...}

    event: end
    data: {"status": "succeeded"}

First the current status, then one `status` event per change of status or attempt, a keep-alive comment after
~15 s without one, and after a terminal status a final `end` event and the end of the response. A stream that
closes without `end` (the server's cap on a stream's length) is meant to be reopened: browsers' EventSource
does so by itself, and the first event tells the status at that time.
"""

import json
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from boothbridge.accounts.sign_in import Operator
from boothbridge.bootstrap import Container
from boothbridge.http.openapi import AUTH, INVALID, errors, merge
from boothbridge.jobs.cancel import cancel_job
from boothbridge.jobs.view import DEFAULT_PAGE_SIZE, JobQuery, JobsView, job_not_found, parse_job_id, watch_job

# Re-read period of a watched job: the hub wakes the stream when the job ends, but queued -> running (and a
# retry, or parking at the provider) notify nobody, so the row is also read on this timer.
POLL_SEC = 0.25
POLL_WITHOUT_HUB_SEC = 0.5  # a process without the LISTEN connection: the timer alone
KEEPALIVE_SEC = 15.0
# How long one response may stream. Behind a BUFFERED Lambda function URL nothing reaches the client before the
# response ends, so there it is kept well under the admin function's 30 s timeout.
MAX_STREAM_SEC = 20.0 if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else 900.0


SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["status", "end"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": '`status`: `{"status", "attempt", "at", "error"}`; `end`: `{"status"}`',
        },
        "retry": {"type": "integer"},
    },
}


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def jobs_router(get_container: Any, operator_dep: Any) -> APIRouter:
    router = APIRouter(tags=["jobs"])
    OperatorDep = Annotated[Operator, Depends(operator_dep)]

    @router.get("/api/jobs", responses=errors(*AUTH, INVALID, "400 invalid_parameter"))
    async def list_jobs(
        operator: OperatorDep,
        page: Annotated[int, Query()] = 1,
        page_size: Annotated[int, Query()] = DEFAULT_PAGE_SIZE,
        slot_id: Annotated[str | None, Query(max_length=100)] = None,
        status: Annotated[str | None, Query(max_length=200, description="one or several, comma-separated")] = None,
    ) -> dict[str, Any]:
        """The operator's jobs, newest first, optionally on one slot and/or in given statuses (paginated)."""
        c: Container = await get_container()
        view = JobsView(c.db, c.settings.base_url)
        return await view.list(operator.id, JobQuery(page, page_size, slot_id, status))

    @router.get("/api/jobs/{job_id}", responses=errors(*AUTH, INVALID, "404 job_not_found"))
    async def get_job(job_id: str, operator: OperatorDep) -> dict[str, Any]:
        """One job: status, attempts and their errors, timings, cost, the result's link while it is kept."""
        c: Container = await get_container()
        return await JobsView(c.db, c.settings.base_url).get(operator.id, parse_job_id(job_id))

    @router.get(
        "/api/jobs/{job_id}/events",
        response_class=StreamingResponse,
        responses=merge(
            {
                200: {
                    "description": "`status` events, keep-alive comments, and `end` after the terminal status",
                    # Open API 3.1 has no `itemSchema`: the stream's `schema` describes one event, as is usual.
                    "content": {"text/event-stream": {"schema": SSE_EVENT}},
                }
            },
            errors(*AUTH, INVALID, "404 job_not_found"),
        ),
    )
    async def job_events(job_id: str, operator: OperatorDep) -> StreamingResponse:
        """Server-Sent Events: the job's status now, then each change as it happens, `end` after the last."""
        c: Container = await get_container()
        view = JobsView(c.db, c.settings.base_url)
        jid = parse_job_id(job_id)
        if await view.state(operator.id, jid) is None:  # a JSON 404 before the stream starts
            raise job_not_found(jid)
        poll = POLL_SEC if c.hub is not None else POLL_WITHOUT_HUB_SEC

        async def stream() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            states = watch_job(
                view, c.hub, operator.id, jid, poll_sec=poll, keepalive_sec=KEEPALIVE_SEC, max_sec=MAX_STREAM_SEC
            )
            async for state in states:
                if state is None:
                    yield ": keep-alive\n\n"
                    continue
                yield _sse("status", state.json())
                if state.is_terminal:
                    yield _sse("end", {"status": state.status})

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post(
        "/api/jobs/{job_id}/cancel",
        status_code=202,
        responses=errors(*AUTH, INVALID, "404 job_not_found", "409 job_finished"),
    )
    async def cancel(job_id: str, operator: OperatorDep) -> dict[str, Any]:
        """Cancel a queued, running or parked job; 409 `job_finished` once it has ended. Answers with the job."""
        c: Container = await get_container()
        jid = parse_job_id(job_id)
        await cancel_job(c.db, c.hub, operator.id, operator.username, jid)
        return await JobsView(c.db, c.settings.base_url).get(operator.id, jid)

    return router
