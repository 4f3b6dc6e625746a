"""Retry delays: exponential backoff with jitter, bounded by the job's deadline (pure, no I/O)."""

from __future__ import annotations

import random


def retry_delay(
    attempt: int,
    base_sec: float,
    max_sec: float,
    retry_after: float | None = None,
    rand: random.Random | None = None,
) -> float:
    """Delay before attempt `attempt + 1`: base * 2^(attempt-1), capped, with "equal jitter".

    Half the delay is fixed and half random, so retries spread out without ever collapsing to zero; a
    provider's own Retry-After hint is honoured as a floor.
    """
    r = rand or random
    exp = min(max_sec, base_sec * (2 ** max(attempt - 1, 0)))
    delay = exp / 2 + r.uniform(0, exp / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def next_attempt_in(
    *,
    retryable: bool,
    attempt: int,
    max_attempts: int,
    delay: float,
    seconds_until_reset: float | None,
    seconds_left: float,
    typical_sec: float,
) -> float | None:
    """Seconds until the next attempt may start, or None when none should (pure decision).

    No attempt after a final error or the last allowed one; none before the provider's quota window resets
    (`seconds_until_reset`, from the error), which counts as the delay's floor; and none that cannot end
    (`typical_sec` after its start) within `seconds_left`, the time until the job's last useful moment — a
    paid call that would end after the booth stopped waiting for it helps nobody.
    """
    if not retryable or attempt >= max_attempts:
        return None
    if seconds_until_reset is not None:
        delay = max(delay, seconds_until_reset)
    if delay + max(typical_sec, 0.0) > seconds_left or delay >= seconds_left:
        return None
    return delay


def can_start(seconds_left: float, typical_sec: float) -> bool:
    """Whether an attempt starting now can end (`typical_sec` from now) within `seconds_left`."""
    return seconds_left > 0 and typical_sec <= seconds_left
