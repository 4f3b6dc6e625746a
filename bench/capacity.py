"""How many waiting ingests one server process holds: the load client launches them all at once against the
held `slow` provider; the server process samples its hub, PostgreSQL and its own RSS while they wait."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.harness import SLOW_SLOT, Harness
from bench.load import Sample
from bench.load_client import LoadClient
from bench.meters import rss_kb
from boothbridge.db.engine import libpq_url

# How long everyone is held once all wait, to measure what waiting costs: longer than the fallback poll's
# interval (2 s in the bench), so at least one poll falls in it.
HOLD_SEC = 4.5
SAMPLE_EVERY_SEC = 0.2

PG_ACTIVITY = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE query ILIKE 'LISTEN %') AS listening
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""

# The slow slot's jobs of this phase that are in the queue (queued or running): when there are as many as
# requests, every ingest has passed its enqueue, and what follows is waiting alone.
JOBS_IN_QUEUE = """
SELECT count(*) FROM jobs
WHERE slot_id = %(slot)s AND created_at >= %(since)s AND status IN ('queued', 'running')
"""


@dataclass
class CapacityResult:
    requested: int
    reached: int = 0
    seconds_to_reach: float = math.nan
    listen_min: int = 99
    listen_max: int = 0
    backends_max: int = 0
    listen_backends_max: int = 0
    listen_backends_min: int = 99
    rss_before_kb: int = 0  # the server process's
    rss_max_kb: int = 0
    answered_ok: int = 0
    answered_other: dict[int, int] = field(default_factory=dict)  # HTTP status (-1: no answer) -> count
    drain_seconds: float = math.nan
    hold_statements_per_sec: float = math.nan
    hold_cpu_share: float = math.nan
    photo_bytes: int = 0
    samples: int = 0


async def _jobs_in_queue(pg: psycopg.AsyncConnection[Any], since: Any) -> int:
    row = await (await pg.execute(JOBS_IN_QUEUE, {"slot": SLOW_SLOT, "since": since})).fetchone()
    return int(row[0]) if row else 0


async def hold_waiters(h: Harness, client: LoadClient, n: int, ramp_timeout: float) -> CapacityResult:
    """Launch `n` ingests against the held `slow` provider at once, sample while they wait, then release."""
    hub, meters = h.hub, h.meters
    assert hub is not None
    res = CapacityResult(requested=n, rss_before_kb=rss_kb())
    stop = asyncio.Event()

    async def sampler(pg: psycopg.AsyncConnection[Any]) -> None:
        while not stop.is_set():
            row = await (await pg.execute(PG_ACTIVITY)).fetchone()
            assert row is not None
            res.samples += 1
            res.reached = max(res.reached, hub.waiting)
            res.listen_min = min(res.listen_min, hub.listen_connections)
            res.listen_max = max(res.listen_max, hub.listen_connections)
            res.backends_max = max(res.backends_max, int(row[0]))
            res.listen_backends_max = max(res.listen_backends_max, int(row[1]))
            res.listen_backends_min = min(res.listen_backends_min, int(row[1]))
            res.rss_max_kb = max(res.rss_max_kb, rss_kb())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_SEC)

    h.slow.hold()
    try:
        async with await psycopg.AsyncConnection.connect(libpq_url(h.url), autocommit=True) as pg:
            now_row = await (await pg.execute("SELECT now()")).fetchone()
            assert now_row is not None
            since = now_row[0]  # the database's clock, as jobs.created_at uses
            sampling = asyncio.create_task(sampler(pg))
            t0 = time.perf_counter()
            answered = asyncio.ensure_future(
                client.call(op="burst", path=f"/ingest/{SLOW_SLOT}", photos="waiters", pool=n)
            )
            try:
                while time.perf_counter() - t0 < ramp_timeout:
                    # A waiter subscribes before its job exists: all n subscribed is not yet all n enqueued.
                    if hub.waiting >= n and await _jobs_in_queue(pg, since) >= n:
                        res.seconds_to_reach = time.perf_counter() - t0
                        break
                    if answered.done():
                        break  # everything was answered early (refused?): nothing is waiting
                    await asyncio.sleep(0.05)
                # Everyone waits now: what does merely holding them cost (fallback polls, heartbeats)?
                hold_start, t_hold = meters.read(), time.perf_counter()
                await asyncio.sleep(HOLD_SEC)
                hold_end, held = meters.read(), time.perf_counter() - t_hold
                res.hold_statements_per_sec = (hold_end.statements - hold_start.statements) / held
                res.hold_cpu_share = (hold_end.own_cpu - hold_start.own_cpu) / held
                released = time.time()
                h.slow.release()
                reply = await answered
            finally:
                if not answered.done():
                    answered.cancel()
                stop.set()
                await sampling
    finally:
        h.slow.release()  # never leave held jobs behind, whatever failed
    samples = [Sample.from_row(row) for row in reply["samples"]]
    res.photo_bytes = int(reply["photo_bytes"])
    res.drain_seconds = max((s.received for s in samples), default=released) - released
    for s in samples:
        if s.ok:
            res.answered_ok += 1
        else:
            res.answered_other[s.status] = res.answered_other.get(s.status, 0) + 1
    return res
