"""Client-side quotas for a pool of API keys: requests/minute, requests/day and tokens/minute per key.

Pure sliding-window bookkeeping with an injectable clock (no I/O); `QuotaLimiter.acquire` is the thin async
wrapper that sleeps while a minute window is full. Keys are known only by their index, never by value.

Each key keeps the calls it made in the last minute (with their token counts) and in the last day. A call is
granted to the first key, in round-robin order, that is neither *rested* nor over one of its windows. A key is
rested when the provider refused it, and the limiter remembers why: a `minute` rest (a rate limit: 429 with a
short retry hint) or a `day` rest (the provider said the key's daily quota is spent; it rests until the
provider's daily reset). A day-rested key counts as spent for the day, exactly like a key over its own daily
window, never as "rate limited". When no key is free the limiter says why: `minute` (a window frees up within
a minute, or a rested key comes back — waiting is worthwhile), `rested` (every key still usable today is on a
minute rest) or `day` (every key spent its daily quota, by our count or the provider's word).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Clock = Callable[[], float]
BlockReason = Literal["minute", "rested", "day"]
RestScope = Literal["minute", "day"]


@dataclass(frozen=True)
class QuotaLimits:
    """Per-key limits; None = unlimited. Window lengths are configurable so tests need not wait a minute."""

    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    tokens_per_minute: int | None = None
    minute_sec: float = 60.0
    day_sec: float = 86_400.0

    @classmethod
    def from_catalog(cls, limits: Mapping[str, Any]) -> QuotaLimits:
        """Read the catalog's `limits` object (`requests_per_minute`, ..., optional `minute_window_sec`)."""

        def opt(name: str) -> int | None:
            value = limits.get(name)
            return None if value is None else int(value)

        return cls(
            requests_per_minute=opt("requests_per_minute"),
            requests_per_day=opt("requests_per_day"),
            tokens_per_minute=opt("tokens_per_minute"),
            minute_sec=float(limits.get("minute_window_sec", 60.0)),
            day_sec=float(limits.get("day_window_sec", 86_400.0)),
        )


@dataclass
class _Use:
    at: float
    tokens: int


@dataclass
class Grant:
    """Permission for one call with key number `key`; `finish` it when the call is over."""

    key: int
    use: _Use


@dataclass(frozen=True)
class Blocked:
    """No key may take the call now; `wait_sec` is how long until one may (for `day`: until a daily slot)."""

    reason: BlockReason
    wait_sec: float


class QuotaBlocked(Exception):
    def __init__(self, blocked: Blocked) -> None:
        super().__init__(f"quota: {blocked.reason}, free in {blocked.wait_sec:.1f}s")
        self.blocked = blocked


@dataclass
class _KeyState:
    minute: deque[_Use] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)
    rested_until: float = -math.inf
    rest_scope: RestScope = "minute"


def _count_wait(times: list[float], limit: int | None, window: float, now: float) -> float:
    """Seconds until fewer than `limit` of `times` (ascending, all inside the window) remain in the window."""
    if limit is None or len(times) < limit:
        return 0.0
    if limit <= 0:
        return math.inf
    return max(times[len(times) - limit] + window - now, 0.0)


def _token_wait(uses: deque[_Use], limit: int | None, tokens: int, window: float, now: float) -> float:
    """Seconds until `tokens` more fit under `limit` (a call larger than the limit needs an empty window)."""
    if limit is None:
        return 0.0
    total = sum(u.tokens for u in uses)
    if total + tokens <= limit or not uses:
        return 0.0
    for use in uses:  # oldest first: drop until the new call fits
        total -= use.tokens
        if total + tokens <= limit or total <= 0:
            return max(use.at + window - now, 0.0)
    return 0.0  # pragma: no cover - the last use always empties the window


class QuotaLimiter:
    """Sliding windows for `n_keys` keys under the same `limits`."""

    def __init__(self, n_keys: int, limits: QuotaLimits, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._keys = [_KeyState() for _ in range(n_keys)]
        self._next = 0

    def _prune(self, state: _KeyState, now: float) -> None:
        while state.minute and state.minute[0].at <= now - self.limits.minute_sec:
            state.minute.popleft()
        while state.day and state.day[0] <= now - self.limits.day_sec:
            state.day.popleft()

    def _waits(self, state: _KeyState, tokens: int, now: float) -> tuple[float, float]:
        """(seconds until the daily window admits a call, seconds until the minute windows admit this one)."""
        lim = self.limits
        day = _count_wait(list(state.day), lim.requests_per_day, lim.day_sec, now)
        minute = max(
            _count_wait([u.at for u in state.minute], lim.requests_per_minute, lim.minute_sec, now),
            _token_wait(state.minute, lim.tokens_per_minute, tokens, lim.minute_sec, now),
        )
        return day, minute

    def try_acquire(self, tokens: int) -> Grant | Blocked:
        """Grant the call to the next free key (round robin) and record it, or say why no key is free."""
        now = self.clock()
        n = len(self._keys)
        if n == 0:
            return Blocked("day", math.inf)
        day_waits: list[float] = []
        soon: list[float] = []  # keys usable today: when each frees up
        all_rested = True
        for offset in range(n):
            index = (self._next + offset) % n
            state = self._keys[index]
            self._prune(state, now)
            day_wait, minute_wait = self._waits(state, tokens, now)
            rest = max(state.rested_until - now, 0.0)
            if rest > 0 and state.rest_scope == "day":
                day_wait = max(day_wait, rest)
            if day_wait > 0:
                day_waits.append(day_wait)
                continue
            if rest == 0 and minute_wait == 0:
                use = _Use(now, max(tokens, 0))
                state.minute.append(use)
                state.day.append(now)
                self._next = (index + 1) % n
                return Grant(index, use)
            all_rested = all_rested and rest > 0
            soon.append(max(rest, minute_wait))
        if not soon:
            return Blocked("day", min(day_waits))
        return Blocked("rested" if all_rested else "minute", min(soon))

    def rest(self, key: int, seconds: float, scope: RestScope = "minute") -> None:
        """Keep key number `key` out of use for `seconds`: it was rate limited (`minute`), or the provider said its
        daily quota is spent (`day`, until the provider's daily reset). A longer rest already in place stays."""
        state = self._keys[key]
        until = self.clock() + max(seconds, 0.0)
        if until >= state.rested_until:
            state.rested_until = until
            state.rest_scope = scope

    def rested(self, key: int) -> RestScope | None:
        """Why key number `key` is out of use now (`minute` or `day`), or None when it is not rested."""
        state = self._keys[key]
        return state.rest_scope if state.rested_until > self.clock() else None

    def finish(self, grant: Grant, tokens: int | None = None) -> None:
        """The granted call is over: it counts from now on (the server saw it at some point up to now), with the
        token count the provider reported when known (else the estimate stays)."""
        if tokens is not None:
            grant.use.tokens = max(int(tokens), 0)
        window = self._keys[grant.key].minute
        if grant.use in window:
            window.remove(grant.use)
            grant.use.at = self.clock()
            window.append(grant.use)  # the latest time: the window stays in time order

    async def acquire(
        self,
        tokens: int,
        max_wait: float,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> Grant:
        """Wait (at most `max_wait` seconds in all) for a free key; raise `QuotaBlocked` if none comes in time.

        Only a `minute` block is waited out; `rested` and `day` blocks are raised at once.
        """
        deadline = self.clock() + max_wait
        while True:
            outcome = self.try_acquire(tokens)
            if isinstance(outcome, Grant):
                return outcome
            remaining = deadline - self.clock()
            if outcome.reason != "minute" or outcome.wait_sec > remaining:
                raise QuotaBlocked(outcome)
            await sleep(max(outcome.wait_sec, 0.001))
