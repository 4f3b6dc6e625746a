"""Job endpoints (SPEC §6): list, detail, a live status stream (Server-Sent Events) and cancel.

The stream (`GET /api/jobs/{id}/events`, `text/event-stream`, framed by sse-starlette):

    retry: 1000

    event: status
    data: {"status":"queued","attempt":0,"at":"2025-01-09T12:00:00+00:00","error":null,"step_index":0,
           "step_count":2,"alternative":0,"phase":"queued","progress":0.0}

    event: status
    data: {"status":"running","attempt":1,...,"phase":"processing_style_transfer","progress":0.15}

    : keep-alive

    event: status
    data: {"status":"succeeded","attempt":1,...}

    event: end
    data: {"status":"succeeded"}

(one line each on the wire). First the current status, then one `status` event per change of status, attempt,
step, alternative or phase (`boothbridge.jobs.progress` defines phase and progress), a keep-alive comment every
~15 s, and after a terminal status a final `end` event and the end of the response. A stream that closes without
`end` (the server's cap on a stream's length) is meant to be reopened: browsers' EventSource does so by itself,
and the first event tells the status at that time.

A browser's EventSource cannot send the bearer header: it opens the stream with `?token=`, a stream token from
`POST /api/jobs/{id}/events/token` (accounts/stream_tokens.py: this job, this session, 60 s).

`boothbridge.jobs.view` and `jobs.cancel` are imported by the endpoints, not here: they bring psycopg (through
the jobs' SQL), which the first request's container loads anyway, and the operator API's cold import does without
it (issue 13). So is sse-starlette, by the stream's endpoint: it imports uvicorn (to hear a server's shutdown).
"""

import math
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from boothbridge.accounts.stream_tokens import issue_stream_token
from boothbridge.db.engine import autocommit
from boothbridge.http.openapi import AUTH, INVALID, errors, merge
from functions.admin.deps import (
    ClaimsDep,
    ContainerDep,
    CredentialsDep,
    EngineDep,
    HubDep,
    JobsViewDep,
    OperatorDep,
    StreamCallerDep,
    token_refused,
)
from functions.admin.schemas_jobs import JobDetail, JobPage, StreamToken

if TYPE_CHECKING:
    from sse_starlette import EventSourceResponse

# Re-read period of a watched job: the hub wakes the stream when the job ends, but queued -> running (and a
# retry, parking at the provider, the next step or phase) notify nobody, so the row is also read on this timer.
POLL_SEC = 0.25
POLL_WITHOUT_HUB_SEC = 0.5  # a process without the LISTEN connection: the timer alone
KEEPALIVE_SEC = 15.0  # proxies close a connection idle for longer (read when a stream opens)
RETRY_MS = 1000  # EventSource's wait before it reopens a closed stream
DEFAULT_PAGE_SIZE = 20  # jobs.view.DEFAULT_PAGE_SIZE, not imported (see above); tests/unit/test_cold_import.py
# How long one response may stream. Behind a BUFFERED Lambda function URL nothing reaches the client before the
# response ends, so there it is kept well under the admin function's 30 s timeout.
MAX_STREAM_SEC = 20.0 if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else 900.0
SEP = "\n"  # the documented framing (sse-starlette's default is CRLF)


SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["status", "end"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": '`status`: `{"status", "attempt", "at", "error", "step_index", "step_count", '
            '"alternative", "phase", "progress"}`; `end`: `{"status"}`',
        },
        "retry": {"type": "integer"},
    },
}

router = APIRouter(tags=["jobs"])


# The job bodies are sent with `exclude_unset`: an attempt error's `details` is absent when nothing more is known
# (as stored), not null. Every other field is required, so nothing else can be left out.
@router.get(
    "/api/jobs",
    response_model=JobPage,
    response_model_exclude_unset=True,
    responses=errors(*AUTH, INVALID, "400 invalid_parameter"),
)
async def list_jobs(
    operator: OperatorDep,
    view: JobsViewDep,
    page: Annotated[int, Query()] = 1,
    page_size: Annotated[int, Query()] = DEFAULT_PAGE_SIZE,
    slot_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(max_length=200, description="one or several, comma-separated")] = None,
) -> JobPage:
    """The operator's jobs, newest first, optionally on one slot and/or in given statuses (paginated)."""
    from boothbridge.jobs.view import JobQuery  # deferred (psycopg): see the module docstring

    return JobPage.model_validate(await view.list(operator.id, JobQuery(page, page_size, slot_id, status)))


@router.get(
    "/api/jobs/{job_id}",
    response_model=JobDetail,
    response_model_exclude_unset=True,
    responses=errors(*AUTH, INVALID, "404 job_not_found"),
)
async def get_job(job_id: str, operator: OperatorDep, view: JobsViewDep) -> JobDetail:
    """One job: status, attempts and their errors, timings, cost, the result's link while it is kept, and where
    it is in its pipeline (steps, step k of n, phase, progress, the step that failed)."""
    from boothbridge.jobs.view import parse_job_id  # deferred (psycopg): see the module docstring

    return JobDetail.model_validate(await view.get(operator.id, parse_job_id(job_id)))


# response_class=Response: only the document's `responses` name the content type (EventSourceResponse is imported
# when a stream opens; see the module docstring).
@router.get(
    "/api/jobs/{job_id}/events",
    response_model=None,
    response_class=Response,
    responses=merge(
        {
            200: {
                "description": "`status` events, a keep-alive comment every ~15 s, and `end` after the terminal status",
                # Open API 3.1 has no `itemSchema`: the stream's `schema` describes one event, as is usual.
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
            }
        },
        errors(*AUTH, INVALID, "404 job_not_found"),
    ),
)
async def job_events(job_id: str, caller: StreamCallerDep, view: JobsViewDep, hub: HubDep) -> "EventSourceResponse":
    """Server-Sent Events: the job's status now, then each change as it happens, `end` after the last.
    Authenticated by the bearer header or by `?token=` (a stream token for this job; 401 otherwise)."""
    # Deferred, as the module docstring says: sse-starlette loads uvicorn, jobs.view psycopg.
    from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent

    from boothbridge.jobs.view import job_not_found, parse_job_id, watch_job

    jid = parse_job_id(job_id)
    if await view.state(caller.operator.id, jid) is None:  # a JSON error before the stream starts
        # A stream token was only ever issued for a job its operator could see: not one for this job now.
        raise token_refused() if caller.by_token else job_not_found(jid)
    poll = POLL_SEC if hub is not None else POLL_WITHOUT_HUB_SEC

    async def stream() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(retry=RETRY_MS, sep=SEP)
        # Keep-alives are the response's pings (on their own timer), so watch_job is asked for none.
        states = watch_job(
            view, hub, caller.operator.id, jid, poll_sec=poll, keepalive_sec=math.inf, max_sec=MAX_STREAM_SEC
        )
        async for state in states:
            if state is None:
                continue
            yield JSONServerSentEvent(state.json(), event="status", sep=SEP)
            if state.is_terminal:
                yield JSONServerSentEvent({"status": state.status}, event="end", sep=SEP)

    # A client that goes away cancels the stream (and so the watch) at once: sse-starlette listens for it.
    return EventSourceResponse(
        stream(),
        headers={"Cache-Control": "no-cache"},
        ping=KEEPALIVE_SEC,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep=SEP),
        sep=SEP,
    )


@router.post(
    "/api/jobs/{job_id}/events/token",
    response_model=StreamToken,
    responses=errors(*AUTH, INVALID, "404 job_not_found"),
)
async def stream_token(job_id: str, claims: ClaimsDep, view: JobsViewDep, credentials: CredentialsDep) -> StreamToken:
    """A stream token for this job's event stream, for a browser's EventSource (`?token=`): valid for 60 s
    (long enough to open the stream and for EventSource's own reopens; then ask again), for this job and
    this session only, refused once the session is logged out, never accepted as a bearer token."""
    from boothbridge.jobs.view import job_not_found, parse_job_id  # deferred (psycopg): see the module docstring

    jid = parse_job_id(job_id)
    if await view.state(claims.user_id, jid) is None:
        raise job_not_found(jid)
    token, valid_for = issue_stream_token(credentials.jwt_secret, claims, jid)
    return StreamToken(token=token, expires_in_sec=valid_for, events_path=f"/api/jobs/{jid}/events?token={token}")


@router.post(
    "/api/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobDetail,
    response_model_exclude_unset=True,
    responses=errors(*AUTH, INVALID, "404 job_not_found", "409 job_finished"),
)
async def cancel(
    job_id: str, operator: OperatorDep, engine: EngineDep, view: JobsViewDep, hub: HubDep, c: ContainerDep
) -> JobDetail:
    """Cancel a queued, running or parked job; 409 `job_finished` once it has ended. Answers with the job."""
    # Deferred (psycopg): see the module docstring.
    from boothbridge.jobs.cancel import cancel_job
    from boothbridge.jobs.view import parse_job_id

    jid = parse_job_id(job_id)
    await cancel_job(autocommit(engine), hub, operator.id, operator.username, jid, c.providers)
    return JobDetail.model_validate(await view.get(operator.id, jid))
