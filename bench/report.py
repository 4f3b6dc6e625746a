"""Percentiles, the rows of the report, the targets, and the plain-text table."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.capacity import SAMPLE_EVERY_SEC, CapacityResult
from bench.meters import Reading

if TYPE_CHECKING:  # bench.max_rate imports this module
    from bench.max_rate import RateCapacity

TARGET_TAX_P50_MS = 5.0
TARGET_TAX_P99_MS = 20.0
INLINE = "HTTP inline baseline   /inline"
INGEST = "ingest through queue   /ingest"
WIDTH = 116


def pct(values: list[float], p: int) -> float:
    """The p-th percentile (inclusive interpolation), NaN for no data."""
    if not values:
        return math.nan
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def ms(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:.{digits}f}"


@dataclass
class LatencyRow:
    label: str
    mode: str  # "c=50" (closed loop, 50 clients) or "10/s" (open loop)
    values: list[float]  # client-side latencies of the requests answered correctly
    seconds: float  # the phase's duration, client side
    errors: int
    before: Reading  # server-side meters around the phase
    after: Reading

    def per_request(self, attr: str) -> float:
        n = len(self.values) + self.errors
        delta = float(getattr(self.after, attr) - getattr(self.before, attr))
        return delta / n if n else math.nan

    def cells(self) -> str:
        v = self.values
        rate = f"{len(v) / self.seconds:.0f}" if self.seconds else "-"
        own, pg = self.per_request("own_cpu"), self.per_request("pg_cpu")
        stmts, conns = self.per_request("statements"), self.per_request("checkouts")
        return (
            f"{self.label:<32}{self.mode:>6}{len(v):>5}{self.errors:>4}{ms(pct(v, 50)):>9}{ms(pct(v, 99)):>9}"
            f"{ms(max(v) if v else math.nan):>9}{rate:>7}{ms(own, 1):>9}{ms(pg, 1):>8}{stmts:>8.1f}{conns:>8.1f}"
        )


@dataclass
class WakeRow:
    label: str
    mode: str
    values: list[float]


@dataclass
class Report:
    max_conc: int
    cores: int
    provider_calls: list[float] = field(default_factory=list)
    rows: list[LatencyRow] = field(default_factory=list)
    wakes: list[WakeRow] = field(default_factory=list)
    capacity: CapacityResult | None = None
    rate_capacity: RateCapacity | None = None

    @property
    def clean(self) -> bool:
        cap_errors = sum(self.capacity.answered_other.values()) if self.capacity else 0
        rates = self.rate_capacity
        wrong = rates.inline.wrong_bodies + rates.ingest.wrong_bodies if rates else 0
        return not any(r.errors for r in self.rows) and not cap_errors and not wrong

    def tax(self, mode: str) -> tuple[float, float]:
        by_label = {r.label: r.values for r in self.rows if r.mode == mode}
        ing, inl = by_label.get(INGEST, []), by_label.get(INLINE, [])
        return pct(ing, 50) - pct(inl, 50), pct(ing, 99) - pct(inl, 99)

    def cpu_tax(self, mode: str) -> tuple[float, float]:
        """Extra CPU per request of ingest over inline: (server process, PostgreSQL)."""
        by_label = {r.label: r for r in self.rows if r.mode == mode}
        ing, inl = by_label.get(INGEST), by_label.get(INLINE)
        if ing is None or inl is None:
            return math.nan, math.nan
        return (
            ing.per_request("own_cpu") - inl.per_request("own_cpu"),
            ing.per_request("pg_cpu") - inl.per_request("pg_cpu"),
        )

    def print(self, facts: dict[str, str]) -> None:
        line = "-" * WIDTH
        print()
        print("BOOTHBRIDGE BRIDGE TAX BENCHMARK".center(WIDTH))
        print(line)
        for key, value in facts.items():
            print(f"{key:<22}{value}")
        print(line)
        self.print_latency()
        print(line)
        self.print_wakes()
        print(line)
        if self.rate_capacity is not None:
            self.rate_capacity.print()
            print(line)
        if self.capacity is not None:
            print_capacity(self.capacity)
            print(line)
        self.print_targets()
        print(line)

    def print_latency(self) -> None:
        print(
            f"{'LATENCY (ms, client side)':<32}{'mode':>6}{'n':>5}{'err':>4}{'p50':>9}{'p99':>9}{'max':>9}"
            f"{'req/s':>7}{'cpu/rq':>9}{'pg/rq':>8}{'sql/rq':>8}{'conn/rq':>8}"
        )
        calls = self.provider_calls
        print(
            f"{'provider.run() inline, no HTTP':<32}{'c=1':>6}{len(calls):>5}{0:>4}{ms(pct(calls, 50), 4):>9}"
            f"{ms(pct(calls, 99), 4):>9}{ms(max(calls) if calls else math.nan, 4):>9}"
        )
        for mode in dict.fromkeys(r.mode for r in self.rows):
            for row in (r for r in self.rows if r.mode == mode):
                print(row.cells())
            p50, p99 = self.tax(mode)
            cpu = self.cpu_tax(mode)
            print(
                f"{'  BRIDGE TAX = ingest - inline':<32}{mode:>6}{'':>9}{ms(p50):>9}{ms(p99):>9}{'':>16}"
                f"{ms(cpu[0], 1):>9}{ms(cpu[1], 1):>8}"
            )

    def print_wakes(self) -> None:
        print(f"{'WAKE LATENCY (ms), per ingest':<42}{'mode':>6}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
        for w in self.wakes:
            v = w.values
            print(
                f"{w.label:<42}{w.mode:>6}{len(v):>6}{ms(pct(v, 50)):>9}{ms(pct(v, 99)):>9}"
                f"{ms(max(v) if v else math.nan):>9}"
            )

    def print_targets(self) -> None:
        print("TARGETS")
        cap = self.capacity
        p50, p99 = self.tax(f"c={self.max_conc}")
        reached = cap.reached if cap else 0
        listen = cap.listen_backends_max if cap else 0
        one_listen = cap is not None and cap.listen_max == 1 and cap.listen_backends_max == 1 and reached > 0
        targets = [
            (f"bridge tax p50 <= {TARGET_TAX_P50_MS:g} ms at {self.max_conc} concurrent", p50, TARGET_TAX_P50_MS),
            (f"bridge tax p99 <= {TARGET_TAX_P99_MS:g} ms at {self.max_conc} concurrent", p99, TARGET_TAX_P99_MS),
        ]
        for label, got, limit in targets:
            # A tax far below zero means the baseline's own tail was longer: noise, not a result.
            got_ms = got * 1e3
            verdict = "MISSED" if got_ms > limit else "MET" if got_ms >= -limit else "INCONCLUSIVE"
            if math.isnan(got_ms):
                verdict = "NOT MEASURED"
            print(f"{label:<46}{ms(got) + ' ms':>36}   {verdict}")
        self.print_saturation()
        if self.rate_capacity is not None:
            label, value, verdict = self.rate_capacity.target_line()
            print(f"{label:<46}{value:>36}   {verdict}")
        label = "all waiters share one LISTEN connection"
        value = f"{reached} waiters on {listen} LISTEN backend(s)"
        print(f"{label:<46}{value:>36}   {'MET' if one_listen else 'MISSED'}")

    def print_saturation(self) -> None:
        """Context for the tax targets, from this run's own figures: with N requests always in flight and every
        core busy, each request waits for the CPU work of the others, so the tax at N concurrent approaches
        N x (extra CPU per ingest) / cores. The CPU a 5 ms tax would allow is printed beside what ingest costs."""
        n = self.max_conc
        own, pg = self.cpu_tax(f"c={n}")
        floor, _ = self.tax("c=1")
        rows = [
            ("  tax at c=1 (nothing queues; per-request floor)", f"{ms(floor)} ms"),
            (f"  extra CPU per ingest at c={n} (server + PostgreSQL)", f"{ms(own + pg)} ms"),
            (
                f"  {n} x that / {self.cores} cores (expected tax at saturation)",
                f"{ms(n * (own + pg) / self.cores, 1)} ms",
            ),
            (
                f"  extra CPU per ingest a {TARGET_TAX_P50_MS:g} ms tax allows here",
                f"{ms(TARGET_TAX_P50_MS / 1e3 * self.cores / n)} ms",
            ),
        ]
        for label, value in rows:
            print(f"{label:<60}{value:>22}")


def print_capacity(cap: CapacityResult) -> None:
    print("WAITING INGESTS HELD BY ONE SERVER PROCESS (slow provider holds every job, then releases them)")
    other = ", ".join(f"HTTP {k}: {v}" if k >= 0 else f"no answer: {v}" for k, v in sorted(cap.answered_other.items()))
    growth_kb = cap.rss_max_kb - cap.rss_before_kb
    reach = "-" if math.isnan(cap.seconds_to_reach) else f"{cap.seconds_to_reach:.1f}"
    rows = [
        ("ingests launched at once", f"{cap.requested}"),
        ("max in-process waiters (hub.waiting)", f"{cap.reached}"),
        ("seconds until all were waiting", reach),
        ("hub.listen_connections min / max", f"{cap.listen_min} / {cap.listen_max}"),
        ("PG backends on the database, max", f"{cap.backends_max}"),
        ("PG backends in LISTEN, min / max", f"{cap.listen_backends_min} / {cap.listen_backends_max}"),
        ("server process RSS before / max (MB)", f"{cap.rss_before_kb / 1024:.0f} / {cap.rss_max_kb / 1024:.0f}"),
        ("server RSS growth per waiter (kB)", f"{growth_kb / max(cap.requested, 1):.0f}"),
        ("  for comparison: one photo (kB)", f"{cap.photo_bytes / 1024:.0f}"),
        ("SQL statements/s while all wait", f"{cap.hold_statements_per_sec:.0f}"),
        ("server process CPU while all wait (cores)", f"{cap.hold_cpu_share:.2f}"),
        ("answered 200 with the photo / other", f"{cap.answered_ok} / {other or 'none'}"),
        ("seconds from release to all answered", f"{cap.drain_seconds:.1f}"),
        (f"samples taken (every {SAMPLE_EVERY_SEC:g} s)", f"{cap.samples}"),
    ]
    for label, value in rows:
        print(f"{label:<48}{value:>24}")
