"""The operator API's job bodies: the job list and detail (`boothbridge.jobs.view` builds them), a stream token,
a slot test run's answer, and a slot's statistics with where its failed requests stopped. The conventions are
`schemas.py`'s (nullable is `X | None`, extra keys forbidden, timestamps as the `isoformat()` strings they are sent
as)."""

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from boothbridge.jobs.status import JobStatus
from functions.admin.schemas import Answer, SlotSeries, Timestamp

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


# A pipeline step's state in a job: `pending` (not reached), the job's own status for the step it is at, or how a
# finished step ended (`skipped`: an optional step that failed for good).
StepStatus = Literal["pending", "queued", "running", "waiting_provider", "succeeded", "failed", "skipped", "cancelled"]


class StepError(Answer):
    code: str
    message: str


class JobStep(Answer):
    """One step (or one of its alternatives) of the job's pipeline: tried (finished, or the one the job is at), or
    `pending` (not reached; alternative 0, nothing measured)."""

    index: int = Field(description="the step, 0-based")
    provider_id: str
    operation_id: str
    alternative: int = Field(description="0: the step's own provider; k: its k-th alternative")
    status: StepStatus
    phase: str = Field(
        description="the step the job is at: `queued`, `processing_<operation_id>`, `waiting_provider`, "
        "`uploading_image` or the job's final status; a finished step: its status; not reached: `pending`"
    )
    attempts: int = Field(description="provider attempts this step (alternative) made")
    started_at: Timestamp | None
    finished_at: Timestamp | None
    ms: int | None = Field(description="started until finished, milliseconds; null until it ended")
    cost: float | None = Field(description="in the provider's currency; null when unknown or not run")
    error: StepError | None = Field(description="why it ended without a result; null otherwise")
    output_media_id: uuid.UUID | None = Field(description="the image it produced (the next step's input)")


class FailedStep(Answer):
    """Where a failed job stopped: the step and the alternative that failed last."""

    index: int
    alternative: int
    provider_id: str
    operation_id: str


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
    steps: list[JobStep] = Field(description="each step and alternative tried, in order, then the steps not reached")
    step_index: int = Field(description="the step the job is at (0-based)")
    step_count: int = Field(description="the pipeline's steps (1 for a one-step slot)")
    phase: str = Field(
        description="`queued`, `processing_<operation_id>`, `waiting_provider`, `uploading_image`, or the final "
        "status (`succeeded`, `failed`, `cancelled`)"
    )
    progress: float = Field(
        ge=0,
        le=1,
        description="0.0-1.0: finished steps count whole, the current one by its phase; 1.0 once succeeded",
    )
    failed_step: FailedStep | None = Field(description="where a failed job stopped; null unless it failed")


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


class StepFailures(Answer):
    step_index: int = Field(description="the step (0-based) where failed booth requests stopped")
    alternative: int = Field(description="the alternative that failed last (0: the step's own provider)")
    count: int


class SlotStats(SlotSeries):
    """A slot's series, and where its failed booth requests stopped in its pipeline over the same range."""

    failures_by_step: list[StepFailures] = Field(description="by step, then alternative")
