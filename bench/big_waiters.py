"""Big photos and many waiting booths: work before enqueue, and server memory per waiting ingest (issue 13).

    python -m bench.big_waiters          # or: make bench

The server is the product as an operator runs it, `python -m local` (`bench.waiter_server`), in its own process,
with an embedded PostgreSQL of its own (separate processes, not counted). This process is the load client and
the referee: it makes the photos, posts them over loopback HTTP as a booth does (the DSLR fields, `Expect:
100-continue`, a Content-Length body streamed from one copy of the photo, so the client holds no 200 copies),
and reads the server's RSS (VmRSS, and the kernel's peak VmHWM) from /proc/PID/status and its JSON log lines
from its stderr. Two server processes, one after the other:

1. **without the in-process worker** (`RUN_WORKER=false`): the jobs stay queued; once all wait, the operator
   cancels them through the admin API and every booth gets 502 `job_cancelled`.
2. **with the in-process worker** (WORKER_CONCURRENCY and the held provider's `max_parallel_jobs` = --parallel):
   the `slow` provider (`bench.held_provider`) holds each job until released; then every booth gets 200 and
   its own photo back.

In each: one warm-up waiter goes through the same steps (so one-time imports and pools are not counted), then
`idle` = RSS; the peak counter is reset; --waiters booths post distinct 6000 x 4000 JPEGs of about 8.6 MB (the
same picture, each with its own JPEG comment: distinct bytes, so no re-post de-duplication) at once to the held
slot. A booth told 503 with Retry-After (the product's "try again" under overload) posts again after
min(Retry-After, RETRY_CAP_SEC), one whose connection failed (no answer) after 1 s, up to RETRIES posts; those
refusals are counted and shown. `all waiting` = when
every booth is either waiting (the slot's queued + running jobs: a job exists once its ingest has enqueued it,
and nothing ends before the release) or answered for good; HOLD_SEC later `peak` = VmHWM, the highest RSS from
the first byte of the burst to that moment, and `waited` = the slot's queued + running jobs; then the release (or
the cancel); `after` = RSS AFTER_SEC after the last answer. Per waiter = (peak - idle) / waited, shown as a
fraction of the photo's size (target <= 0.1x); after is shown as % above idle (target <= 20 %). The photos have no
EXIF block: the product strips metadata (our comment too) and keeps the compressed data byte for byte, so the
right answer with the worker is exactly the photo as made.

Then, in the second server, **work before enqueue**: --posts distinct 24 MP JPEGs of about 7.2 MB (quality 93),
one at a time (after one warm-up post), to the `zero` slot; the figures are the median and p90 of the field
`work_before_enqueue_ms` on the server's JSON log lines (server time up to the enqueue minus the time spent
waiting for body bytes); "not logged" while the product logs no such field. Target <= 30 ms.

Informational: exits 0 whatever the figures (refusals and 504 `processing_timeout` answers included: both are
counted and shown), 1 only if an answer was wrong: anything else but the expected answer above once the retries
are spent (or the server failed). About 2 minutes on an idle 2-core
machine (the ramps and the with-worker answers take longer when the machine is busy).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.big_upload import HEIGHT, WIDTH, Answer, Booth, Variant, camera_photo
from bench.waiter_server import HELD_SLOT, ZERO_SLOT, EmulatorProcess, Operator

WAITER_QUALITY, ENQUEUE_QUALITY = 95, 93  # about 8.6 MB and 7.2 MB
HOLD_SEC = 2.0  # everyone waits this long before the peak is read and the answers are let go
AFTER_SEC = 10.0
RAMP_TIMEOUT_SEC = 60.0
RETRIES = 6  # posts per booth at most: a booth told 503 with Retry-After posts again (waiting at most RETRY_CAP_SEC)
RETRY_CAP_SEC = 5.0
FIELD = "work_before_enqueue_ms"


@dataclass
class Burst:
    """One server's memory figures, kB, and the answers."""

    worker: bool
    waiters: int
    photo_bytes: int
    cold: int = 0  # RSS once started, before the warm-up
    idle: int = 0
    peak: int = 0
    waiting: int = 0  # RSS when the peak was read
    after: int = 0
    reached: int = 0  # jobs queued + running when the peak was read: the ingests that waited together
    refused: dict[str, int] = field(default_factory=dict)  # 503 + Retry-After answers (posted again), by code
    timed_out: int = 0  # answered 504 processing_timeout (T_sync passed)
    ramp_sec: float = float("nan")
    answer_sec: float = float("nan")  # release/cancel -> last answer
    wrong: list[str] = field(default_factory=list)
    log_summary: list[str] = field(default_factory=list)  # the server's warnings, when something went wrong

    @property
    def per_waiter_kb(self) -> float:
        return (self.peak - self.idle) / max(1, self.reached)

    @property
    def per_waiter_x(self) -> float:
        return self.per_waiter_kb * 1024 / self.photo_bytes

    @property
    def after_pct(self) -> float:
        return 100 * (self.after - self.idle) / self.idle


async def hold_burst(server: EmulatorProcess, op: Operator, booth: Booth, photo: bytes, res: Burst, tag: str) -> None:
    """Post `res.waiters` distinct photos at once to the held slot, take the figures, answer them (see the
    module docstring); refusals go to `res.refused`, wrong answers to `res.wrong`."""
    n = res.waiters
    server.hold()
    variants = [Variant.of(photo, f"{tag}-{i}") for i in range(n)]

    async def booth_posts(v: Variant) -> Answer:
        """As a booth that honours Retry-After: a refused post (503, or no answer) is posted again, up to RETRIES
        times."""
        for _ in range(RETRIES):
            a = await booth.post(f"/ingest/{HELD_SLOT}", v)
            if not a.refused:
                break
            res.refused[a.code] = res.refused.get(a.code, 0) + 1
            await asyncio.sleep(min(RETRY_CAP_SEC, a.retry_after or 0))
        return a

    server.reset_peak()
    t0 = time.monotonic()
    posts = [asyncio.create_task(booth_posts(v)) for v in variants]
    # Every booth is either waiting (its job exists) or answered for good: then nothing more comes in.
    while time.monotonic() - t0 < RAMP_TIMEOUT_SEC:
        if await op.count_jobs(HELD_SLOT, "queued,running") + sum(p.done() for p in posts) >= n:
            res.ramp_sec = time.monotonic() - t0
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(HOLD_SEC)
    res.peak, res.waiting = server.peak_kb(), server.rss_kb()
    res.reached = await op.count_jobs(HELD_SLOT, "queued,running")
    let_go = time.monotonic()
    if res.worker:
        server.release()
    else:
        await op.cancel_all(HELD_SLOT)
    answers = await asyncio.gather(*posts)
    res.answer_sec = max(a.received for a in answers) - let_go
    server.hold()
    expected = hashlib.sha256(photo).hexdigest()  # the photo, its metadata (our comment) stripped
    for i, a in enumerate(answers):
        good = (a.status, a.sha256) == (200, expected) if res.worker else (a.status, a.code) == (502, "job_cancelled")
        if (a.status, a.code) == (504, "processing_timeout"):
            res.timed_out += 1  # T_sync passed before its turn: the product's answer to a late job, not a wrong one
        elif not good:
            res.wrong.append(f"waiter {i}: {a.status} {a.code or a.sha256[:12]}")


async def one_server(worker: bool, args: argparse.Namespace, photos: dict[str, bytes]) -> tuple[Burst, list[float]]:
    """Start a server, measure the waiters (and, with the worker, the work before enqueue), stop it."""
    res = Burst(worker, args.waiters, len(photos["waiter"]))
    enqueue_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bb-bigwait-") as tmp:
        Path(tmp).chmod(0o755)  # the embedded PostgreSQL runs as its own system user when we are root
        server = EmulatorProcess(Path(tmp), worker=worker, parallel=args.parallel)
        limits = httpx.Limits(max_connections=args.waiters + 16, max_keepalive_connections=args.waiters + 16)
        try:
            await asyncio.to_thread(server.start)
            op = Operator(server)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as client:
                await op.sign_in()
                await op.configure_slots()
                booth = Booth(client, op.ingest_password)
                res.cold = server.rss_kb()
                warm = Burst(worker, 1, res.photo_bytes)
                await hold_burst(server, op, booth, photos["waiter"], warm, "warm-up")
                await asyncio.sleep(1.0)
                res.idle = server.rss_kb()
                await hold_burst(server, op, booth, photos["waiter"], res, "waiter")
                await asyncio.sleep(AFTER_SEC)
                res.after = server.rss_kb()
                res.wrong += [f"warm-up: {w}" for w in warm.wrong]
                if worker:
                    enqueue_ms = await work_before_enqueue(server, booth, photos["enqueue"], args.posts, res.wrong)
                if res.wrong or res.refused or res.timed_out:
                    res.log_summary = server.warnings_summary()
            await op.close()
        finally:
            await asyncio.to_thread(server.stop)
    return res, enqueue_ms


async def work_before_enqueue(
    server: EmulatorProcess, booth: Booth, photo: bytes, posts: int, wrong: list[str]
) -> list[float]:
    """`posts` distinct photos one at a time (plus a warm-up) to the zero slot; the field's logged values."""
    for i in range(posts + 1):
        if i == 1:
            mark = len(server.lines)  # the warm-up's line is not counted
        a = await booth.post(f"/ingest/{ZERO_SLOT}", Variant.of(photo, f"enqueue-{i}"))
        if (a.status, a.sha256) != (200, hashlib.sha256(photo).hexdigest()):
            wrong.append(f"enqueue post {i}: {a.status} {a.code}")
    await asyncio.sleep(0.5)  # the reader thread has the last lines
    return [float(x) for x in server.logged(FIELD, mark) if isinstance(x, int | float)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(args: argparse.Namespace, photos: dict[str, bytes], bursts: list[Burst], enqueue_ms: list[float]) -> None:
    mib = 1024.0
    print("\nBig photos, many waiting booths: the server is `python -m local` in its own process (RSS from /proc)")
    waiter_mb, enqueue_mb = len(photos["waiter"]) / 1e6, len(photos["enqueue"]) / 1e6
    print(
        f"waiters: {args.waiters} booths post distinct {WIDTH} x {HEIGHT} JPEGs of {waiter_mb:.1f} MB at once; "
        f"with the worker: WORKER_CONCURRENCY = max_parallel_jobs = {args.parallel}"
    )
    print(f"work before enqueue: {args.posts} distinct 24 MP JPEGs of {enqueue_mb:.1f} MB, one at a time\n")
    print(f"{'figure':<48}{'measured':>30}{'target':>10}")
    cell = "not logged"
    if enqueue_ms:
        cell = f"{statistics.median(enqueue_ms):.1f} / {percentile(enqueue_ms, 0.9):.1f} ms (n={len(enqueue_ms)})"
    print(f"{'work before enqueue (server log), median / p90':<48}{cell:>30}{'<= 30 ms':>10}")
    for b in bursts:
        name = "with the worker" if b.worker else "without the worker"
        per = f"{b.per_waiter_x:.2f}x ({b.per_waiter_kb / mib:.1f} MiB)"
        if b.reached != b.waiters:
            per = f"{b.reached} of {b.waiters} waited: {per}"
        print(f"{'memory per waiting ingest, ' + name:<48}{per:>30}{'<= 0.1x':>10}")
        print(f"{'RSS 10 s after the answers, ' + name:<48}{f'{b.after_pct:+.0f} % of idle':>30}{'<= 20 %':>10}")
    head = f"{'cold':>7}{'idle':>7}{'peak':>7}{'waiting':>9}{'after':>7}{'waited':>8}{'ramp s':>8}{'answer s':>10}"
    print(f"\n{'server RSS, MiB':<16}{head}  504 at T_sync; refused (503 + Retry-After or no answer; posted again)")
    for b in bursts:
        refused = f"{b.timed_out}; " + (", ".join(f"{n} {code}" for code, n in b.refused.items()) or "none")
        print(
            f"{'with worker' if b.worker else 'without worker':<16}{b.cold / mib:>7.0f}{b.idle / mib:>7.0f}"
            f"{b.peak / mib:>7.0f}{b.waiting / mib:>9.0f}{b.after / mib:>7.0f}{b.reached:>8}{b.ramp_sec:>8.1f}"
            f"{b.answer_sec:>10.1f}  {refused}"
        )
    print(
        "\ncold: after start-up; idle: after one warm-up waiter; peak: VmHWM from the burst's first byte until all had "
        f"waited {HOLD_SEC:g} s; waiting: RSS then; after: {AFTER_SEC:g} s after the last answer; waited: queued + "
        "running jobs then (per waiter = (peak - idle) / waited); ramp s: burst start -> every post waiting or "
        "answered; answer s: release (or cancel) -> last answer"
    )
    for b in bursts:
        if b.log_summary:
            print(f"\nserver log {'with' if b.worker else 'without'} the worker, warnings and errors (most frequent):")
            print("\n".join(f"  {line}" for line in b.log_summary))


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # about 1 s on two threads
        waiter_photo = pool.submit(camera_photo, WAITER_QUALITY)
        enqueue_photo = pool.submit(camera_photo, ENQUEUE_QUALITY)
        photos = {"waiter": waiter_photo.result(), "enqueue": enqueue_photo.result()}
    bursts: list[Burst] = []
    enqueue_ms: list[float] = []
    for worker in (False, True):
        burst, logged = await one_server(worker, args, photos)
        bursts.append(burst)
        enqueue_ms += logged
    report(args, photos, bursts, enqueue_ms)
    wrong = [w for b in bursts for w in b.wrong]
    for w in wrong[:10]:
        print(f"WRONG: {w}")
    if len(wrong) > 10:
        print(f"WRONG: ... {len(wrong) - 10} more")
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.big_waiters", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--waiters", type=int, default=200, help="booths posting at once (200)")
    p.add_argument("--parallel", type=int, default=64, help="worker concurrency and the held provider's limit (64)")
    p.add_argument("--posts", type=int, default=20, help="posts for the work-before-enqueue figure (20)")
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
