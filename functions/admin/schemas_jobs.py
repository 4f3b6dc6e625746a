"""The operator API's job bodies: the job list and detail (`boothbridge.jobs.view` builds them), a stream token,
and a slot test run's answer. The conventions are `schemas.py`'s (nullable is `X | None`, extra keys forbidden,
timestamps as the `isoformat()` strings they are sent as)."""

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from boothbridge.jobs.status import JobStatus
from functions.admin.schemas import Answer, Timestamp

# Inline, without the enum's docstring (about Python, not the API) as its description.
Status = Annotated[JobStatus, WithJsonSchema({"type": "string", "enum": [status.value for status in JobStatus]})]


class JobError(Answer):
    code: str = Field(description="why the job ended without a result, e.g. `upstream_rejected`, `cancelled`")
    message: str


class AttemptError(Answer):
    """One attempt that ended without a result (a provider error, a lapsed lease, a cancel), as recorded."""

    attempt: int
    code: str
    message: str
    retryable: bool = Field(description="whether the error allowed another attempt")
    at: Timestamp
    # Absent (never null) when nothing more is known: the routes send these with `exclude_unset`.
    details: dict[str, Any] | SkipJsonSchema[None] = Field(
        None, description="the provider's retry hint, quota scope and reset, when known"
    )


class JobTimings(Answer):
    """Milliseconds on the database clock; a phase still going on is measured against now (it grows)."""

    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    queued_ms: int = Field(description="arrival until the first attempt started (or until the end, if it never did)")
    run_ms: int | None = Field(description="first start until the end, retry back-off included; null if never run")
    total_ms: int = Field(description="arrival until the end")


class JobDetail(Answer):
    id: uuid.UUID
    slot_id: str
    status: Status = Field(description="`succeeded`, `failed` and `cancelled` are final")
    provider_id: str
    operation_id: str
    attempt: int = Field(description="attempts started so far (0 while first queued)")
    max_attempts: int
    attempt_errors: list[AttemptError]
    error: JobError | None = Field(description="why it ended in error; null otherwise")
    cost: float | None = Field(description="in the provider's currency; null until known")
    timings: JobTimings
    is_test: bool = Field(description="an operator's test run, not a booth's request")
    result_url: str | None = Field(description="the result's public link while it is kept")


class JobPageMeta(Answer):
    page: int
    page_size: int
    total: int = Field(description="the jobs matching the filters")


class JobPage(Answer):
    data: list[JobDetail]
    meta: JobPageMeta


class StreamToken(Answer):
    token: str = Field(description="for `?token=` on this job's event stream only, within this session")
    expires_in_sec: int = Field(description="seconds it is accepted for (EventSource's reopens included)")
    events_path: str = Field(description="the stream's path with the token, relative to the API's base URL")


# A pipeline step's state in a job: `pending` (not reached), the job's own status for the step it is at, or how a
# finished step ended (`skipped`: an optional step that failed for good).
StepStatus = Literal["pending", "queued", "running", "waiting_provider", "succeeded", "failed", "skipped", "cancelled"]


class StepError(Answer):
    code: str
    message: str


class SlotTestStep(Answer):
    """One step (or alternative) a test run tried, with its intermediate image."""

    index: int = Field(description="the step, 0-based")
    alternative: int = Field(description="0: the step's own provider; k: its k-th alternative")
    provider_id: str
    operation_id: str
    status: StepStatus
    ms: int | None = Field(description="how long the step took, milliseconds; null if it did not end")
    cost: float | None = Field(description="the provider's charge for this step; null when it reports none")
    error: StepError | None = Field(description="why the step ended without a result; null otherwise")
    image_url: str | None = Field(description="the step's output image (public link); null if it made none")


class SlotTestRun(Answer):
    """A test run that produced a result (any other outcome is an error answer)."""

    job_id: uuid.UUID
    status: Literal[JobStatus.SUCCEEDED]
    processing_ms: int = Field(description="how long the run took (as `X-Processing-Ms`)")
    cost: float | None = Field(description="the provider's charge for this run; null when it reports none")
    result_url: str = Field(description="the result's public link")
    result_mime: str
    steps: list[SlotTestStep] = Field([], description="each step and alternative tried, in order")
