"""Retry delays: exponential growth, the cap, equal jitter within [exp/2, exp], Retry-After as a floor, and
the retry decision's boundaries."""

from __future__ import annotations

import itertools
import random

import pytest

from boothbridge.jobs.backoff import retry_delay, should_retry


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


def test_should_retry_a_retryable_error_with_attempts_and_time_left() -> None:
    assert should_retry(True, 1, 3, 0.5, 100.0) is True
    assert should_retry(True, 2, 3, 0.5, 100.0) is True


def test_should_not_retry_a_non_retryable_error() -> None:
    assert should_retry(False, 1, 3, 0.5, 100.0) is False


@pytest.mark.parametrize(("attempt", "max_attempts", "expected"), [(2, 3, True), (3, 3, False), (4, 3, False)])
def test_should_not_retry_once_attempts_are_used_up(attempt: int, max_attempts: int, expected: bool) -> None:
    assert should_retry(True, attempt, max_attempts, 0.5, 100.0) is expected


def test_single_attempt_jobs_are_never_retried() -> None:
    assert should_retry(True, 1, 1, 0.0, 100.0) is False


@pytest.mark.parametrize(
    ("delay", "to_deadline", "expected"),
    [(4.99, 5.0, True), (5.0, 5.0, False), (5.01, 5.0, False), (0.1, 0.0, False), (0.1, -3.0, False)],
)
def test_should_not_retry_when_the_delay_reaches_the_deadline(delay: float, to_deadline: float, expected: bool) -> None:
    assert should_retry(True, 1, 3, delay, to_deadline) is expected
