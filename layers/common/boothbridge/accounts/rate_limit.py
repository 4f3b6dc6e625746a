"""Per-key rate limit of the machine-client APIs (`/api/v1/*`, issue 15): each API key may make
API_KEY_RATE_LIMIT requests (a `limits` rate string: "120/minute", or several joined by ";", e.g.
"10/second;500/hour", each enforced) in a moving window; the next one is 429 `rate_limited` with `Retry-After`.

The counts live in RATE_LIMIT_STORAGE_URI (a `limits` storage URI). The default `memory://` counts in the process:
right for the emulator and one server, but every instance of a multi-instance deployment (several Lambda
execution environments, several servers) then counts on its own, so such a deployment points it at a shared store
(`redis://host:6379`, `memcached://…`; the `async+` prefix of `limits`' asyncio storages is added here).

The `limits` package is imported with the first check (the machine-client API's cold import stays without it); a
limiter is made once per app (`functions/api_v1/app.py`) so its memory storage outlives a request.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from boothbridge.errors import AppError

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.aio.strategies import MovingWindowRateLimiter

# The namespace of the keys' counters in a shared storage (it may hold other applications' counters too).
NAMESPACE = "boothbridge-api-key"


def parse_rate(text: str) -> list[RateLimitItem]:
    """The limits of a rate string ("120/minute", "10/second;500/hour"). Raises ValueError for anything else."""
    from limits import parse_many

    items = parse_many(text)
    if not items:
        raise ValueError(f"not a rate limit: {text!r}")
    return items


def check_rate(text: str) -> str:
    """A settings validator: `text` unchanged when it is a rate string, else ValueError."""
    parse_rate(text)
    return text


def async_storage_uri(uri: str) -> str:
    """`limits`' asyncio storage URI for a storage URI (`memory://` → `async+memory://`; one with the prefix stays)."""
    return uri if uri.startswith("async+") else f"async+{uri}"


def rate_limited(retry_after: int) -> AppError:
    """429 `rate_limited` with `Retry-After` (whole seconds, at least 1)."""
    return AppError(
        429,
        "rate_limited",
        "too many requests with this API key; try again later",
        {"retry_after_sec": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


class KeyRateLimiter:
    """The moving-window limit of each API key. `rate`: a rate string (see the module docstring); `storage_uri`:
    where the counts are kept. The storage is built on the first `admit`."""

    def __init__(self, rate: str, storage_uri: str) -> None:
        self._items = parse_rate(rate)
        self._storage_uri = async_storage_uri(storage_uri)
        self._limiter: MovingWindowRateLimiter | None = None

    def _strategy(self) -> MovingWindowRateLimiter:
        if self._limiter is None:
            from limits.aio.strategies import MovingWindowRateLimiter
            from limits.storage import storage_from_string

            storage = storage_from_string(self._storage_uri, key_prefix=NAMESPACE)
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    async def admit(self, key_id: str) -> None:
        """Count one request of the key `key_id`; raises 429 `rate_limited` (with `Retry-After`: seconds until the
        oldest request of the exhausted window leaves it) when any of its limits is used up. A refused request is
        not counted (all limits are tested before any is hit; only a concurrent request taking the last place
        between the two leaves the earlier limits of a refused one counted)."""
        limiter = self._strategy()
        for item in self._items:
            if not await limiter.test(item, key_id):
                raise await self._refusal(item, key_id)
        for item in self._items:
            if not await limiter.hit(item, key_id):
                raise await self._refusal(item, key_id)

    async def _refusal(self, item: RateLimitItem, key_id: str) -> AppError:
        stats = await self._strategy().get_window_stats(item, key_id)
        return rate_limited(max(1, math.ceil(stats.reset_time - time.time())))
