"""Capacity: the highest open-loop arrival rate at which p99 <= 1 s and every answer is right, per path.

Issue 13 keeps this target: capacity through the queue (`/ingest`) >= 0.9x the inline path's (`/inline`), with
the zero-latency provider. `search_rate()` finds one path's figure with short open-loop steps run by the load
client (Poisson arrivals, `bench.load.open_loop`): from `START_RATE` it doubles the rate while a step passes
(halves while one fails) until one passes and one fails, then bisects (geometric midpoint) `BISECT_STEPS`
times. A step's arrivals span about `STEP_SEC` seconds (at least `MIN_STEP` requests), so at every rate, on
both paths, a step is the same length in time: the overload a step can hide in its last second is then the
same fraction of either path's rate, and the ratio compares like with like. A step passes when every request
was sent and answered 200 with its own photo and the p99 latency is <= `P99_LIMIT_SEC`; the client stops
sending as soon as enough requests took longer than the limit that the p99 is over it, waits for the answers,
and the next step starts `SETTLE_SEC` later. Both paths post from one photo set in the same order: ingest takes
each photo once over its whole search (no de-duplication), inline starts every step from the set's first photo
(it stores nothing, and its faster steps would need more photos than the client should hold).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.load import Sample
from bench.report import INGEST, INLINE, pct

P99_LIMIT_SEC = 1.0
TARGET_RATIO = 0.9
START_RATE = 40.0  # requests/s of the first step
MIN_RATE, MAX_RATE = 2.0, 2000.0  # the search gives up below / above these
STEP_SEC = 2.0  # each step's arrivals span about this long ...
MIN_STEP = 100  # ... with at least this many requests
BISECT_STEPS = 5  # after the bracket: the rate is known to within 2^(1/2^5), ~2 %, of a doubling
SETTLE_SEC = 1.0  # pause after a step's last answer (the worker's last completions, the pools)
POOL = 184  # keep-alive connections (the client adds 16); as the fixed-rate open loop, so they are reused
SEED = 11
PHOTOS = "capacity"  # the load client's photo set for the search, shared by both paths
PHOTO_BUDGET = 3000  # photos for ingest's whole search: enough up to ~250 requests/s (~225 kB each)

Call = Callable[..., Awaitable[dict[str, Any]]]


def blown_at(n: int) -> int:
    """How many of n latencies over the limit make the p99 (inclusive interpolation, as `pct`) over it."""
    return n - math.floor(0.99 * (n - 1))


@dataclass
class Step:
    rate: float  # arrivals per second asked for
    planned: int  # requests the step would send
    samples: list[Sample]
    seconds: float  # client side, first arrival to last answer
    client_cpu: float  # the load client's CPU seconds during the step

    @property
    def client_cores(self) -> float:
        return self.client_cpu / self.seconds if self.seconds else math.nan

    @property
    def p99(self) -> float:
        return pct([s.latency for s in self.samples], 99)

    @property
    def wrong(self) -> int:
        return sum(not s.ok for s in self.samples)

    @property
    def passed(self) -> bool:
        return len(self.samples) == self.planned and not self.wrong and self.p99 <= P99_LIMIT_SEC

    def describe(self) -> str:
        if self.passed:
            return f"{self.rate:.0f} ok ({self.p99 * 1e3:.0f} ms)"
        why = [f"p99 {self.p99 * 1e3:.0f} ms"]
        if len(self.samples) < self.planned:
            why.append(f"stopped at {len(self.samples)}/{self.planned}")
        if self.wrong:
            statuses = Counter("no answer" if s.status < 0 else str(s.status) for s in self.samples if not s.ok)
            why.append("wrong: " + " ".join(f"{k} x{v}" for k, v in sorted(statuses.items())))
        return f"{self.rate:.0f} FAIL ({', '.join(why)})"


@dataclass
class RateSearch:
    """One path's search: every step in order, the highest passing and the lowest failing step."""

    label: str  # the row's label, as in the LATENCY table
    name: str  # "inline" / "ingest"
    steps: list[Step] = field(default_factory=list)
    best: Step | None = None
    ceiling: Step | None = None  # the lowest failing rate above `best`; None: never failed (a lower bound)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.best.rate if self.best else math.nan

    @property
    def wrong_bodies(self) -> int:
        """Answers 200 whose body was not the photo sent: a wrong answer at any rate (other refusals only fail
        their step: an overloaded path may refuse)."""
        return sum(s.status == 200 and not s.ok for step in self.steps for s in step.samples)


async def search_rate(call: Call, label: str, name: str, path: str, distinct: bool) -> RateSearch:
    """Find the highest passing rate of `path` by driving the load client through `call(**command)`;
    `distinct`: never post a photo twice (ingest), else every step starts from the set's first photo."""
    result = RateSearch(label, name)
    used = 0

    async def step(rate: float) -> Step | None:
        nonlocal used
        n = max(MIN_STEP, round(rate * STEP_SEC))
        if distinct and used + n > PHOTO_BUDGET:
            result.note = "out of photos"
            return None
        reply = await call(
            op="open",
            path=path,
            photos=PHOTOS,
            first=used if distinct else 0,
            count=n,
            rate=rate,
            seed=SEED + len(result.steps),
            pool=POOL,
            stop_slow=[P99_LIMIT_SEC, blown_at(n)],
        )
        samples = [Sample.from_row(row) for row in reply["samples"]]
        s = Step(rate, n, samples, float(reply["seconds"]), float(reply["client_cpu"]))
        used += len(s.samples)  # photos never sent were never ingested: the next step may use them
        result.steps.append(s)
        if s.passed and (result.best is None or rate > result.best.rate):
            result.best = s
        if not s.passed and (result.ceiling is None or rate < result.ceiling.rate):
            result.ceiling = s
        await asyncio.sleep(SETTLE_SEC)
        return s

    rate = START_RATE
    while (s := await step(rate)) is not None and (result.best is None or result.ceiling is None):
        rate = rate * 2 if s.passed else rate / 2
        if not MIN_RATE <= rate <= MAX_RATE:
            result.note = f"search left {MIN_RATE:g}-{MAX_RATE:g}/s"
            break
    for _ in range(BISECT_STEPS):
        if result.best is None or result.ceiling is None:
            break
        if await step(round(math.sqrt(result.best.rate * result.ceiling.rate), 1)) is None:
            break
    return result


@dataclass
class RateCapacity:
    inline: RateSearch
    ingest: RateSearch
    seconds: float  # wall time of both searches

    @property
    def ratio(self) -> float:
        return self.ingest.rate / self.inline.rate

    @property
    def verdict(self) -> str:
        if math.isnan(self.ratio):
            return "NOT MEASURED"
        if self.ratio >= TARGET_RATIO:
            return "MET"
        return "MISSED"

    def target_line(self) -> tuple[str, str, str]:
        """(label, value, verdict) for the TARGETS section."""
        return (f"capacity through the queue >= {TARGET_RATIO:g}x inline", f"{self.ratio:.2f}x", self.verdict)

    def print(self) -> None:
        print(
            f"CAPACITY: highest open-loop rate (Poisson, ~{STEP_SEC:g} s steps) with p99 <= {P99_LIMIT_SEC:g} s and"
            " every answer right, zero-latency provider"
        )
        print(f"{'':<32}{'rate/s':>8}{'p99 ms':>8}{'n':>6}{'client cores':>14}{'first failing rate/s':>24}")
        for s in (self.inline, self.ingest):
            best, ceiling = s.best, s.ceiling
            fail = f"{ceiling.rate:.0f}" if ceiling else "none (lower bound)"
            p99 = f"{best.p99 * 1e3:.0f}" if best else "-"
            n = len(best.samples) if best else 0
            cores = f"{best.client_cores:.2f}" if best else "-"
            print(f"{s.label:<32}{s.rate:>8.0f}{p99:>8}{n:>6}{cores:>14}{fail:>24}")
        _, value, verdict = self.target_line()
        print(f"{'ratio queue / inline':<32}{value:>8}   target >= {TARGET_RATIO:g}x   {verdict}")
        for s in (self.inline, self.ingest):
            trail = ", ".join(step.describe() for step in s.steps)
            print(f"  {s.name} steps (rate/s): {trail}" + (f" [{s.note}]" if s.note else ""))
        print(f"  both searches took {self.seconds:.0f} s")


async def measure_capacity(call: Call, slot: str) -> RateCapacity:
    """Inline first, then ingest, on the same server, client process and photos; `slot` is the zero slot."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    inline = await search_rate(call, INLINE, "inline", f"/inline/{slot}", distinct=False)
    ingest = await search_rate(call, INGEST, "ingest", f"/ingest/{slot}", distinct=True)
    return RateCapacity(inline, ingest, loop.time() - started)
