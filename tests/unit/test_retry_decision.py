"""decide_retry: the one retry decision of the worker and the webhook path (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.retry import NO_TIME_NOTE, decide_retry
from boothbridge.providers.base import ProviderError
from tests.support.records import job_record

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _job(attempt: int = 1, deadline_in: float = 150.0, fallback_in: float | None = None) -> JobRecord:
    return job_record(
        NOW,
        provider_id="turbotext",
        attempt=attempt,
        deadline_at=NOW + timedelta(seconds=deadline_in),
        booth_fallback_at=NOW + timedelta(seconds=fallback_in) if fallback_in is not None else None,
    )


def _decide(job: JobRecord, err: ProviderError, typical: float = 20.0) -> tuple[float | None, str]:
    decision = decide_retry(job, err, base_sec=0.5, max_sec=10.0, typical_sec=typical, now=NOW)
    return decision.retry_in, decision.message


def test_a_retryable_failure_with_time_left_is_retried() -> None:
    retry_in, message = _decide(_job(), ProviderError("provider_timeout", "slow", retryable=True))
    assert retry_in is not None and 0.25 <= retry_in <= 0.5
    assert message == "slow"


def test_the_booth_s_original_photo_answer_ends_the_paying() -> None:
    """The Turbotext fault: attempt 1 timed out at 44 s; the booth gets its own photo at 48 s (4 s left)."""
    retry_in, message = _decide(_job(fallback_in=4.0), ProviderError("provider_timeout", "slow", retryable=True))
    assert retry_in is None
    assert message == "slow" + NO_TIME_NOTE


def test_a_quota_reset_beyond_the_deadline_ends_it_and_a_final_error_says_nothing_more() -> None:
    resets = NOW + timedelta(hours=8)
    err = ProviderError("rate_limited", "quota", retryable=True, quota_scope="minute", resets_at=resets)
    assert _decide(_job(), err)[0] is None
    final = ProviderError("provider_rejected", "no face", retryable=False)
    assert _decide(_job(), final) == (None, "no face")
    assert _decide(_job(attempt=3), ProviderError("x", "m", retryable=True)) == (None, "m")


def test_a_quota_reset_that_fits_is_waited_for_and_one_that_does_not_says_why() -> None:
    soon = ProviderError(
        "rate_limited", "quota", retryable=True, quota_scope="minute", resets_at=NOW + timedelta(seconds=30)
    )
    assert _decide(_job(), soon) == (30.0, "quota")  # the reset is the floor over the short backoff
    late = ProviderError("rate_limited", "quota", retryable=True, resets_at=NOW + timedelta(seconds=140))
    assert _decide(_job(), late) == (None, "quota" + NO_TIME_NOTE)  # 140 s + 20 s typical > 150 s left
    past = ProviderError("rate_limited", "quota", retryable=True, resets_at=NOW - timedelta(seconds=5))
    retry_in, _ = _decide(_job(), past)
    assert retry_in is not None and 0.25 <= retry_in <= 0.5  # a reset already past is no floor


def test_the_provider_s_retry_after_hint_is_a_floor_and_must_fit_too() -> None:
    assert _decide(_job(), ProviderError("rate_limited", "slow down", retryable=True, retry_after=7.0)) == (
        7.0,
        "slow down",
    )
    hint = ProviderError("rate_limited", "slow down", retryable=True, retry_after=135.0)
    assert _decide(_job(), hint) == (None, "slow down" + NO_TIME_NOTE)


def test_without_a_fallback_the_job_s_deadline_is_the_last_useful_moment() -> None:
    err = ProviderError("provider_timeout", "slow", retryable=True)
    assert _decide(_job(deadline_in=10.0), err) == (None, "slow" + NO_TIME_NOTE)  # 20 s typical cannot fit
    assert _decide(_job(deadline_in=-1.0), err) == (None, "slow" + NO_TIME_NOTE)  # already past
    # A fallback later than the deadline changes nothing: the earlier of the two counts.
    assert _decide(_job(deadline_in=10.0, fallback_in=500.0), err) == (None, "slow" + NO_TIME_NOTE)
    retry_in, _ = _decide(_job(deadline_in=150.0, fallback_in=500.0), err)
    assert retry_in is not None


def test_a_provider_without_a_typical_time_only_needs_the_start_to_fit() -> None:
    err = ProviderError("provider_timeout", "slow", retryable=True)
    retry_in, message = _decide(_job(deadline_in=1.0), err, typical=0.0)
    assert retry_in is not None and 0.25 <= retry_in <= 0.5 and message == "slow"
    assert _decide(_job(deadline_in=0.2), err, typical=0.0) == (None, "slow" + NO_TIME_NOTE)


def test_the_delay_grows_with_the_attempt_and_the_last_attempt_is_final() -> None:
    err = ProviderError("provider_timeout", "slow", retryable=True)
    retry_in, _ = _decide(_job(attempt=2), err)
    assert retry_in is not None and 0.5 <= retry_in <= 1.0  # base 0.5 doubled, equal jitter
    assert _decide(_job(attempt=4), err) == (None, "slow")  # past max_attempts (a takeover's extra attempt spent)
    final = ProviderError("provider_rejected", "blocked", retryable=False)
    assert _decide(_job(deadline_in=1.0), final) == (None, "blocked")  # final and out of time: no time note
