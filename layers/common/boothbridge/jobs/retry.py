"""Whether and when a failed attempt is tried again: one decision for the worker and the webhook path (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from boothbridge.jobs.backoff import next_attempt_in, retry_delay
from boothbridge.jobs.model import JobRecord
from boothbridge.providers.base import ProviderError

NO_TIME_NOTE = " (no further attempt: it could not end before the booth's answer is due)"


@dataclass(frozen=True)
class RetryDecision:
    """`retry_in`: seconds until the next attempt, or None to fail the job now; `message`: the error to record."""

    retry_in: float | None
    message: str


@dataclass(frozen=True)
class RetryPolicy:
    """The deployment's backoff bounds (RETRY_BASE_SEC, RETRY_MAX_SEC), s; the worker and the webhook path share
    one."""

    base_sec: float
    max_sec: float

    def decide(self, job: JobRecord, err: ProviderError, *, typical_sec: float, now: datetime) -> RetryDecision:
        """`decide_retry` within these bounds."""
        return decide_retry(job, err, base_sec=self.base_sec, max_sec=self.max_sec, typical_sec=typical_sec, now=now)


def decide_retry(
    job: JobRecord, err: ProviderError, *, base_sec: float, max_sec: float, typical_sec: float, now: datetime
) -> RetryDecision:
    """The next attempt of `job` after `err`: backoff with jitter from `base_sec` to `max_sec`, never before the
    provider's hint or its quota's reset, and only if it can end (`typical_sec`) before the job's last useful
    moment (`JobRecord.last_useful_end`). When only time stands in the way, the message says so."""
    retry_in = next_attempt_in(
        retryable=err.retryable,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        delay=retry_delay(job.attempt, base_sec, max_sec, err.retry_after),
        seconds_until_reset=(err.resets_at - now).total_seconds() if err.resets_at is not None else None,
        seconds_left=(job.last_useful_end - now).total_seconds(),
        typical_sec=typical_sec,
    )
    out_of_time = retry_in is None and err.retryable and job.attempt < job.max_attempts
    return RetryDecision(retry_in, err.message + NO_TIME_NOTE if out_of_time else err.message)
