"""What a booth is answered, decided from plain values (pure: no I/O, no HTTP framework).

From the job's state when the wait ends (`job_error`): its result (200, the image), 422 `image_undecodable` (the
worker's decode found the photo corrupt: the booth's own fault, as when ingest decoded every photo itself), 502
`provider_failed` (it failed, or its result is gone), 502 `job_cancelled`, or 504 `processing_timeout` (still
running when the answer is due). A failure is answered as such, or, under the slot's failure policy `original`,
with the booth's own photo: 200 with `X-Fallback: original` (`failure_answer`; never for the photo's own fault,
`falls_back`). `booth_answer` gives the HTTP parts of an outcome
for the ingest function.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from boothbridge.errors import AppError
from boothbridge.ingest.model import IngestOutcome, provider_failed
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.status import JobStatus

TIMEOUT_CODE = "processing_timeout"
UNAVAILABLE_CODE = "database_unavailable"
UNDECODABLE_CODE = "image_undecodable"
FALLBACK_HEADER = {"X-Fallback": "original"}
# How long the request's own log row may wait for a database that blinked (the booth is waiting for its answer).
LOG_RETRY_SEC = 2.0


def job_error(job: JobRecord, t_sync: float) -> AppError | None:
    """Why `job` gives the booth no result now, or None when it succeeded with a result (the caller reads it;
    `result_gone` when that fails). `t_sync` (seconds) is echoed in the 504's details."""
    if job.status == JobStatus.SUCCEEDED and job.result_media_id is not None:
        return None
    if job.status == JobStatus.CANCELLED:
        return AppError(502, "job_cancelled", "the job was cancelled by an operator", {"job_id": str(job.id)})
    if job.status == JobStatus.FAILED and job.error_code == UNDECODABLE_CODE:
        return undecodable(job)
    if job.is_terminal:
        return provider_failed(job)
    return AppError(
        504,
        TIMEOUT_CODE,
        "no result within the response time; the job continues and a re-post of the same photo gets it",
        {"job_id": str(job.id), "t_sync_response": t_sync},
    )


def failure_point(job: JobRecord) -> tuple[int | None, int | None]:
    """Where a job that gives the booth no result stopped: its (step index, alternative) when it failed or was
    cancelled (its final row's), else (None, None) (a success, a job still running at a 504)."""
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return job.step_index, job.alternative
    return None, None


def undecodable(job: JobRecord) -> AppError:
    """422 `image_undecodable` for a job whose worker could not decode the photo (ingest checks only its type,
    header and ending; corruption inside the data shows when it is decoded). `details.job_id`, and
    `details.provider_message`: which image (a slot's template, fully decoded when it was registered, would be
    named there too)."""
    details: dict[str, Any] = {"job_id": str(job.id)}
    if job.error_message:
        details["provider_message"] = job.error_message
    return AppError(422, UNDECODABLE_CODE, "the file could not be decoded as an image (truncated or corrupt)", details)


def falls_back(failure_policy: str, err: AppError) -> bool:
    """Whether `err` is answered with the booth's own photo: under policy `original`, unless the photo itself is
    at fault (422: the booth is told, as it would have been before any job)."""
    return failure_policy == "original" and err.status != 422


def result_gone(job: JobRecord) -> AppError:
    """502 for a job that succeeded but whose result is no longer stored (expired or deleted)."""
    return provider_failed(job, "the result is no longer stored")


def log_status_of(err: AppError) -> str:
    """The processing log's status for a request answered because of `err`: TIMEOUT for the 504 that leaves the
    job running, ERROR for everything else (a fallback answer too: it is a provider failure)."""
    return "TIMEOUT" if err.code == TIMEOUT_CODE else "ERROR"


def error_answer(err: AppError, job_id: uuid.UUID | None = None) -> IngestOutcome:
    """The error itself as the answer (its status, its body)."""
    return IngestOutcome(status=err.status, log_status=log_status_of(err), error=err, job_id=job_id)


def failure_answer(
    failure_policy: str, job_id: uuid.UUID, photo: bytes | None, mime: str, err: AppError
) -> IngestOutcome:
    """The answer to a job that gives no result (`err`): when it `falls_back`, the booth's own photo (`photo`,
    `mime`, read back from storage; None when it could not be) with 200 and `X-Fallback: original` (the error is
    kept for the log); otherwise the error."""
    if falls_back(failure_policy, err) and photo is not None:
        return IngestOutcome(
            status=200,
            log_status=log_status_of(err),
            image=photo,
            mime=mime,
            job_id=job_id,
            fallback=True,
            error=err,
            headers=dict(FALLBACK_HEADER),
        )
    return error_answer(err, job_id)


def success_answer(job: JobRecord, image: bytes, mime: str, *, fresh: bool) -> IngestOutcome:
    """200 with the job's result. Its cost is this request's only when the request created the job (`fresh`): a
    re-post answered by an existing job started no paid call, and its cost was logged once already."""
    cost = float(job.cost) if fresh and job.cost is not None else None
    return IngestOutcome(
        status=200,
        log_status="SUCCESS",
        image=image,
        mime=mime,
        job_id=job.id,
        cost=cost,
        result_media_id=job.result_media_id,
    )


def log_retry_sec(outcome: IngestOutcome) -> float:
    """How long the request's log row may retry a database that blinked: LOG_RETRY_SEC, or a single try when
    this very answer says the database is down."""
    down = outcome.error is not None and outcome.error.code == UNAVAILABLE_CODE
    return 0.0 if down else LOG_RETRY_SEC


@dataclass(frozen=True)
class BoothAnswer:
    """An outcome's HTTP parts: `status`, `headers`, and either `image` (bytes, with `mime`) or `body` (the
    uniform error JSON)."""

    status: int
    headers: dict[str, str]
    image: bytes | None = None
    mime: str | None = None
    body: dict[str, Any] | None = None


def booth_answer(outcome: IngestOutcome) -> BoothAnswer:
    """The HTTP answer to `outcome`: the outcome's headers plus `X-Job-Id` when there is a job. An image (a
    result or the fallback photo) is sent as is; an error as its JSON body with the error's own headers (e.g.
    `Retry-After`) added, which a fallback answer does not carry."""
    headers = dict(outcome.headers)
    if outcome.job_id is not None:
        headers["X-Job-Id"] = str(outcome.job_id)
    if outcome.image is not None:
        return BoothAnswer(outcome.status, headers, image=outcome.image, mime=outcome.mime)
    assert outcome.error is not None, "an answer without an image has an error"
    headers.update(outcome.error.headers)
    return BoothAnswer(outcome.status, headers, body=outcome.error.body())
