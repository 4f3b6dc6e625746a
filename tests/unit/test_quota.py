"""The client-side quota limiter with a fake clock: sliding windows, key rotation, rests, the daily cap."""

from __future__ import annotations

import math

import pytest

from boothbridge.providers.quota import Blocked, Grant, QuotaBlocked, QuotaLimiter, QuotaLimits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def limiter(n_keys: int = 1, **limits: int) -> tuple[QuotaLimiter, FakeClock]:
    clock = FakeClock()
    return QuotaLimiter(n_keys, QuotaLimits(**limits), clock), clock


def granted(outcome: Grant | Blocked) -> Grant:
    assert isinstance(outcome, Grant), outcome
    return outcome


def blocked(outcome: Grant | Blocked) -> tuple[str, float]:
    assert isinstance(outcome, Blocked), outcome
    return outcome.reason, outcome.wait_sec


def test_limits_are_read_from_the_catalog_with_optional_windows() -> None:
    limits = QuotaLimits.from_catalog({"requests_per_minute": 500, "requests_per_day": 2000, "tokens_per_minute": 5e5})
    assert limits == QuotaLimits(500, 2000, 500_000, 60.0, 86_400.0)
    assert QuotaLimits.from_catalog({"minute_window_sec": 1}).minute_sec == 1.0
    assert QuotaLimits.from_catalog({}) == QuotaLimits()


def test_requests_per_minute_slide_with_the_window() -> None:
    q, clock = limiter(requests_per_minute=3)
    for _ in range(3):
        granted(q.try_acquire(10))
    assert q.try_acquire(10) == Blocked("minute", 60.0)
    clock.now += 59.5
    assert blocked(q.try_acquire(10)) == ("minute", pytest.approx(0.5))
    clock.now += 0.5
    granted(q.try_acquire(10))


async def test_a_burst_is_held_to_the_rate() -> None:
    q, clock = limiter(requests_per_minute=3)
    times = []
    for _ in range(10):
        grant = await q.acquire(1, max_wait=1000, sleep=clock.sleep)
        times.append(grant.use.at)
    assert times[:3] == [1000.0] * 3
    assert all(later - earlier >= 60.0 for earlier, later in zip(times, times[3:], strict=False))
    assert times[-1] == 1000.0 + 180.0  # 10 calls at 3/min: the 10th starts in the fourth minute


def test_tokens_per_minute_count_estimates_then_reported_tokens() -> None:
    q, clock = limiter(tokens_per_minute=1000)
    first = granted(q.try_acquire(600))
    assert q.try_acquire(600) == Blocked("minute", 60.0)
    granted(q.try_acquire(400))
    clock.now += 1
    q.finish(first, tokens=100)  # the provider reported fewer tokens than estimated
    assert blocked(q.try_acquire(501)) == ("minute", pytest.approx(59.0))  # 100 + 400 + 501 > 1000 until the 400 expire
    granted(q.try_acquire(400))


def test_a_call_larger_than_the_token_limit_needs_an_empty_window() -> None:
    q, clock = limiter(tokens_per_minute=1000)
    granted(q.try_acquire(10))
    assert q.try_acquire(5000) == Blocked("minute", 60.0)
    clock.now += 60
    granted(q.try_acquire(5000))


def test_a_finished_call_counts_from_its_end() -> None:
    q, clock = limiter(requests_per_minute=1)
    grant = granted(q.try_acquire(1))
    clock.now += 5  # the call took 5 s; the server may have seen it at any time up to now
    q.finish(grant)
    clock.now += 58
    assert blocked(q.try_acquire(1)) == ("minute", pytest.approx(2.0))


def test_the_daily_cap_blocks_with_reason_day() -> None:
    q, clock = limiter(requests_per_day=2, requests_per_minute=100)
    granted(q.try_acquire(1))
    clock.now += 3600
    granted(q.try_acquire(1))
    assert blocked(q.try_acquire(1)) == ("day", pytest.approx(86_400.0 - 3600))
    clock.now += 86_400 - 3600
    granted(q.try_acquire(1))


def test_keys_are_used_round_robin_and_each_has_its_own_windows() -> None:
    q, _ = limiter(3, requests_per_minute=2)
    assert [granted(q.try_acquire(1)).key for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    assert q.try_acquire(1) == Blocked("minute", 60.0)


def test_rested_keys_are_skipped_and_all_rested_says_rested() -> None:
    q, clock = limiter(2)
    q.rest(0, 30)
    assert [granted(q.try_acquire(1)).key for _ in range(3)] == [1, 1, 1]
    q.rest(1, 10)
    assert q.try_acquire(1) == Blocked("rested", 10.0)  # the first key free again
    clock.now += 10
    assert granted(q.try_acquire(1)).key == 1


def test_a_rested_key_and_a_full_window_make_a_minute_wait_for_the_sooner() -> None:
    q, _ = limiter(2, requests_per_minute=1)
    granted(q.try_acquire(1))  # key 0 full for 60 s
    q.rest(1, 20)
    assert q.try_acquire(1) == Blocked("minute", 20.0)


def test_day_exhausted_everywhere_says_day_but_a_rested_key_left_says_rested() -> None:
    q, _ = limiter(2, requests_per_day=1)
    granted(q.try_acquire(1))
    q.rest(1, 5)
    assert q.try_acquire(1) == Blocked("rested", 5.0)
    q2, _ = limiter(2, requests_per_day=1)
    granted(q2.try_acquire(1))
    granted(q2.try_acquire(1))
    outcome = q2.try_acquire(1)
    assert isinstance(outcome, Blocked) and outcome.reason == "day"
    assert QuotaLimiter(0, QuotaLimits()).try_acquire(1) == Blocked("day", math.inf)


async def test_acquire_waits_out_a_minute_block_within_max_wait() -> None:
    q, clock = limiter(requests_per_minute=1)
    await q.acquire(1, max_wait=0, sleep=clock.sleep)
    grant = await q.acquire(1, max_wait=61, sleep=clock.sleep)
    assert grant.use.at == 1060.0


async def test_acquire_raises_when_the_wait_exceeds_max_wait_or_keys_rest() -> None:
    q, clock = limiter(requests_per_minute=1)
    await q.acquire(1, max_wait=0, sleep=clock.sleep)
    with pytest.raises(QuotaBlocked) as caught:
        await q.acquire(1, max_wait=30, sleep=clock.sleep)
    assert caught.value.blocked == Blocked("minute", 60.0)
    assert clock.now == 1000.0  # it did not sleep in vain
    q.rest(0, 120)
    clock.now += 60
    with pytest.raises(QuotaBlocked) as caught:
        await q.acquire(1, max_wait=1000, sleep=clock.sleep)
    assert caught.value.blocked.reason == "rested"


# -- why a key rests: a day rest (the provider said its daily quota is spent) is not a rate limit --


def test_a_day_rested_key_counts_as_spent_for_the_day_not_as_rate_limited() -> None:
    q, clock = limiter(1)
    q.rest(0, 12 * 3600, "day")
    assert q.rested(0) == "day"
    assert q.try_acquire(1) == Blocked("day", 12 * 3600.0)
    clock.now += 12 * 3600
    assert q.rested(0) is None
    assert granted(q.try_acquire(1)).key == 0


def test_a_day_rested_key_is_skipped_and_the_others_keep_working() -> None:
    q, _ = limiter(2)
    q.rest(0, 3600, "day")
    assert [granted(q.try_acquire(1)).key for _ in range(3)] == [1, 1, 1]


def test_day_rested_and_minute_rested_keys_say_rested_for_the_one_usable_today() -> None:
    q, _ = limiter(2)
    q.rest(0, 3600, "day")
    q.rest(1, 5)
    assert (q.rested(0), q.rested(1)) == ("day", "minute")
    assert q.try_acquire(1) == Blocked("rested", 5.0)


def test_day_rested_beside_our_own_daily_cap_says_day_with_the_sooner_reset() -> None:
    q, _ = limiter(2, requests_per_day=1)
    q.rest(0, 7200, "day")
    granted(q.try_acquire(1))  # key 1 takes its one call of the day
    assert q.try_acquire(1) == Blocked("day", 7200.0)


def test_a_shorter_minute_rest_does_not_cut_a_day_rest() -> None:
    q, clock = limiter(1)
    q.rest(0, 3600, "day")
    q.rest(0, 5)
    assert q.rested(0) == "day"
    clock.now += 10
    assert blocked(q.try_acquire(1)) == ("day", pytest.approx(3590.0))


async def test_acquire_raises_a_day_block_at_once() -> None:
    q, clock = limiter(1)
    q.rest(0, 60, "day")
    with pytest.raises(QuotaBlocked) as caught:
        await q.acquire(1, max_wait=1000, sleep=clock.sleep)
    assert caught.value.blocked == Blocked("day", 60.0) and clock.now == 1000.0
