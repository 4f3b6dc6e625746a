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


def should_retry(retryable: bool, attempt: int, max_attempts: int, delay: float, seconds_to_deadline: float) -> bool:
    """Retry only a retryable error, while attempts remain and the next try can start before the deadline."""
    return retryable and attempt < max_attempts and delay < seconds_to_deadline
