"""Retry delays: exponential growth, the cap, equal jitter within [exp/2, exp], Retry-After as a floor, and
the retry decision's boundaries (attempts, the last useful moment, a typical attempt's length, a quota reset)."""

from __future__ import annotations

import itertools
import random

import pytest

from boothbridge.jobs.backoff import can_start, next_attempt_in, retry_delay
from boothbridge.providers.base import retry_hint_seconds


def _exp(attempt: int, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** max(attempt - 1, 0)))


class _Extreme(random.Random):
    """A Random whose uniform() always returns one end of the range (to pin the jitter's bounds exactly)."""

    def __init__(self, upper: bool) -> None:
        super().__init__(0)
        self.upper = upper

    def uniform(self, a: float, b: float) -> float:
        return b if self.upper else a


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_delay_stays_within_equal_jitter_bounds(attempt: int) -> None:
    rand = random.Random(1234)
    exp = _exp(attempt, 0.5, 1000.0)
    delays = [retry_delay(attempt, 0.5, 1000.0, rand=rand) for _ in range(500)]
    assert all(exp / 2 <= d <= exp for d in delays), (min(delays), max(delays), exp)
    # Jitter really spreads: both halves of the jitter range are used, and values are not all equal.
    assert min(delays) < exp * 0.6
    assert max(delays) > exp * 0.9
    assert len(set(delays)) > 400


def test_jitter_extremes_are_exactly_half_and_full_exponential() -> None:
    assert retry_delay(3, 1.0, 100.0, rand=_Extreme(upper=False)) == 2.0
    assert retry_delay(3, 1.0, 100.0, rand=_Extreme(upper=True)) == 4.0


def test_delay_grows_exponentially() -> None:
    low = _Extreme(upper=False)
    high = _Extreme(upper=True)
    lows = [retry_delay(a, 0.25, 1000.0, rand=low) for a in range(1, 8)]
    highs = [retry_delay(a, 0.25, 1000.0, rand=high) for a in range(1, 8)]
    assert highs == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert lows == [h / 2 for h in highs]
    # With real jitter too: attempt n+1's smallest possible delay is attempt n's largest, so it never shrinks,
    # and the average doubles per attempt.
    rand = random.Random(7)
    means = [sum(retry_delay(a, 0.25, 1000.0, rand=rand) for _ in range(400)) / 400 for a in range(1, 7)]
    for prev, nxt in itertools.pairwise(means):
        assert 1.8 < nxt / prev < 2.2, means


def test_attempt_zero_uses_the_base() -> None:
    assert retry_delay(0, 3.0, 100.0, rand=_Extreme(upper=True)) == 3.0


def test_delay_is_capped() -> None:
    rand = random.Random(99)
    for attempt in (5, 10, 30, 60):
        delays = [retry_delay(attempt, 1.0, 10.0, rand=rand) for _ in range(200)]
        assert all(5.0 <= d <= 10.0 for d in delays), (attempt, min(delays), max(delays))
    assert retry_delay(40, 1.0, 10.0, rand=_Extreme(upper=True)) == 10.0


def test_same_seed_gives_the_same_delays() -> None:
    a = [retry_delay(n, 0.5, 10.0, rand=random.Random(42)) for n in range(1, 6)]
    b = [retry_delay(n, 0.5, 10.0, rand=random.Random(42)) for n in range(1, 6)]
    c = [retry_delay(n, 0.5, 10.0, rand=random.Random(43)) for n in range(1, 6)]
    assert a == b
    assert a != c


def test_retry_after_is_a_floor() -> None:
    rand = random.Random(5)
    # Larger than the backoff: the provider's hint wins, even beyond the cap.
    assert retry_delay(1, 1.0, 10.0, retry_after=30.0, rand=rand) == 30.0
    # Smaller than the backoff: it does not shorten the delay.
    for _ in range(100):
        d = retry_delay(3, 1.0, 10.0, retry_after=0.1, rand=rand)
        assert 2.0 <= d <= 4.0
    # Inside the jitter range: the result is never below it.
    for _ in range(100):
        assert retry_delay(3, 1.0, 10.0, retry_after=3.5, rand=rand) >= 3.5
    assert retry_delay(3, 1.0, 10.0, retry_after=3.5, rand=_Extreme(upper=False)) == 3.5
    assert retry_delay(3, 1.0, 10.0, retry_after=0.0, rand=_Extreme(upper=False)) == 2.0


def _next(
    retryable: bool = True,
    attempt: int = 1,
    max_attempts: int = 3,
    delay: float = 0.5,
    reset: float | None = None,
    left: float = 100.0,
    typical: float = 0.0,
) -> float | None:
    return next_attempt_in(
        retryable=retryable,
        attempt=attempt,
        max_attempts=max_attempts,
        delay=delay,
        seconds_until_reset=reset,
        seconds_left=left,
        typical_sec=typical,
    )


def test_a_retryable_error_with_attempts_and_time_left_is_retried_after_the_delay() -> None:
    assert _next(attempt=1) == 0.5
    assert _next(attempt=2) == 0.5


def test_a_final_error_is_not_retried() -> None:
    assert _next(retryable=False) is None


@pytest.mark.parametrize(("attempt", "max_attempts", "retried"), [(2, 3, True), (3, 3, False), (4, 3, False)])
def test_no_retry_once_attempts_are_used_up(attempt: int, max_attempts: int, retried: bool) -> None:
    assert (_next(attempt=attempt, max_attempts=max_attempts) is not None) is retried


def test_single_attempt_jobs_are_never_retried() -> None:
    assert _next(max_attempts=1, delay=0.0) is None


@pytest.mark.parametrize(
    ("delay", "left", "retried"),
    [(4.99, 5.0, True), (5.0, 5.0, False), (5.01, 5.0, False), (0.1, 0.0, False), (0.1, -3.0, False)],
)
def test_no_retry_when_the_delay_reaches_the_deadline(delay: float, left: float, retried: bool) -> None:
    assert (_next(delay=delay, left=left) is not None) is retried


@pytest.mark.parametrize(
    ("delay", "typical", "left", "retried"),
    [(0.5, 2.0, 2.6, True), (0.5, 2.0, 2.5, True), (0.5, 2.0, 2.49, False), (47.0, 12.0, 4.0, False)],
)
def test_no_retry_that_cannot_end_before_the_last_useful_moment(
    delay: float, typical: float, left: float, retried: bool
) -> None:
    """The Turbotext fault: an attempt timed out at 44 s of a booth's 48 s; another (typically 25 s) cannot end in
    time, so it is not started (and paid for)."""
    assert (_next(delay=delay, typical=typical, left=left) is not None) is retried
    assert _next(delay=0.5, typical=25.0, left=4.0) is None


def test_a_quota_reset_is_the_delay_s_floor() -> None:
    """A per-minute quota that frees in 20 s: the retry waits for it (and only if it still fits)."""
    assert _next(delay=0.5, reset=20.0, left=100.0) == 20.0
    assert _next(delay=30.0, reset=20.0, left=100.0) == 30.0
    assert _next(delay=0.5, reset=20.0, left=25.0, typical=10.0) is None  # 20 + 10 > 25
    assert _next(delay=0.5, reset=-5.0, left=100.0) == 0.5  # already reset


@pytest.mark.parametrize(
    ("left", "typical", "ok"), [(10.0, 2.0, True), (2.0, 2.0, True), (1.9, 2.0, False), (0.0, 0.0, False)]
)
def test_an_attempt_starts_only_if_it_can_end_in_time(left: float, typical: float, ok: bool) -> None:
    assert can_start(left, typical) is ok


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("1e12", 86_400.0),
        ("soon", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        (47, 47.0),
    ],
)
def test_a_provider_s_wait_hint_is_a_finite_bounded_number_or_nothing(value: object, seconds: float | None) -> None:
    """`Retry-After: nan` crashed the Gemini error mapping; `inf` made Turbotext's poll sleep for ever."""
    assert retry_hint_seconds(value) == seconds
