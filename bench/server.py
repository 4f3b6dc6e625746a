"""What the server process serves: the Emulator beside a tiny inline baseline, on a real uvicorn server; and
`TimedHub`, the product's notification hub with timestamps."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.zero_provider import ZERO_OPERATION_ID, ZeroProvider
from boothbridge.catalog import IngestLimits
from boothbridge.errors import AppError
from boothbridge.http.errors import install_error_handlers
from boothbridge.http.multipart import read_booth_form
from boothbridge.images.upload import inspect_image
from boothbridge.jobs.model import JobWithResult
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import CHANNEL_DONE
from boothbridge.providers.base import ImageInput, ProviderRequest


class TimedHub(NotificationHub):
    """The product's hub, plus timestamps for the jobs somebody in this process waits (or waited) on:

    - `notified`: when the job's `bb_job_done` NOTIFY arrived, even after the wait ended;
    - `woken`: when the hub first woke the job's waiters, by any path (the NOTIFY, a job ending in this
      process, the fallback poll);
    - `released`: when the waiter's subscription ended, i.e. when `wait_for_job_end` returned.

    It takes whatever arguments the product passes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_timing()

    def start_timing(self) -> None:
        self.notified: dict[uuid.UUID, float] = {}
        self.woken: dict[uuid.UUID, float] = {}
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
                now = time.time()
                if job_id in self._watching and not self.holds(job_id):  # a held NOTIFY wakes nobody
                    self.woken.setdefault(job_id, now)
                if job_id in self._watching or job_id in self.released:  # late NOTIFYs count here too
                    self.notified.setdefault(job_id, now)
        super()._dispatch(channel, payload)

    def job_ended(self, job_id: uuid.UUID, final: JobWithResult | None = None) -> None:
        """Only called when the product's hub has this (a job ended here, or the poll saw it end)."""
        if job_id in self._watching:
            self.woken.setdefault(job_id, time.time())
        super().job_ended(job_id, final)


@contextlib.contextmanager
def timed_hubs() -> Iterator[None]:
    """While active, `build_container` builds a `TimedHub` (with the product's own arguments and wiring)."""
    import boothbridge.bootstrap

    original = boothbridge.bootstrap.NotificationHub
    boothbridge.bootstrap.NotificationHub = TimedHub  # type: ignore[misc]
    try:
        yield
    finally:
        boothbridge.bootstrap.NotificationHub = original  # type: ignore[misc]


def as_timed(hub: NotificationHub) -> TimedHub:
    """The container's hub as a `TimedHub`. Should `timed_hubs()` not have reached the hub's construction, the
    hub becomes one in place; callbacks bound to it before that (a job ending here) then go untimed, so
    wake-ups by such a path are timed when their NOTIFY arrives instead."""
    if not isinstance(hub, TimedHub):
        print("bench: the container's hub was not built as a TimedHub; timing it in place", file=sys.stderr)
        hub.__class__ = TimedHub
        assert isinstance(hub, TimedHub)
        hub.start_timing()
    return hub


def inline_app(provider: ZeroProvider, limits: IngestLimits, max_pixels: int) -> FastAPI:
    """The baseline: the same multipart parsing and image check as ingest, then the provider called inline.
    No queue, no database, no media store."""
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

    def __init__(self, emulator: ASGIApp, inline: ASGIApp) -> None:
        self.emulator = emulator
        self.inline = inline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/inline/"):
            await self.inline(scope, receive, send)
        else:
            await self.emulator(scope, receive, send)


class HttpServer:
    """A real uvicorn server on 127.0.0.1:<ephemeral>, running as a task on the current event loop."""

    def __init__(self, app: ASGIApp) -> None:
        self.config = uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=60
        )
        self.server = uvicorn.Server(self.config)
        self.task: asyncio.Task[None] | None = None
        self.base_url = ""

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name="uvicorn")
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 15)
            self.task = None
