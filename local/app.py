"""One ASGI app for local use: routes by path prefix to the function apps, runs worker and cleanup loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from boothbridge.bootstrap import Container, build_container
from boothbridge.db.engine import resolve_database_url
from boothbridge.errors import error_body
from boothbridge.http.errors import install_error_handlers
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.platform.provision import prepare_database
from boothbridge.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from boothbridge.tasks.delivery import DeliveryLoop

log = logging.getLogger(__name__)
# ArtMancer's endpoints (seed 002), served by the machine-client API: "/api/generate" itself and under these.
ARTMANCER_PREFIXES = ("/api/generate/", "/api/smart-mask/", "/api/image-utils/")


class Emulator:
    """ASGI app. On lifespan start: embedded PostgreSQL if needed, migrations, provisioning, then the
    worker and cleanup loops; `/ingest` → ingest function, `/api/v1` → machine-client API, `/api` → admin
    function, `/` → web UI."""

    def __init__(self, settings: Settings, container: Container | None = None) -> None:
        self.settings = settings
        self.container = container
        self._owns_container = container is None
        self.worker: WorkerLoop | None = None
        self.deliveries: DeliveryLoop | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._routes: list[tuple[str, Any]] = []

    async def start(self) -> None:
        if self.container is None:
            # The emulator owns its database: migrated and provisioned before the parts are built.
            url = await asyncio.to_thread(resolve_database_url, self.settings)
            await prepare_database(self.settings, url)
            self.container = await build_container(self.settings, listen=True, database_url=url)
        c = self.container
        from functions.admin.app import create_app as create_admin
        from functions.api_v1.app import create_app as create_api_v1
        from functions.ingest.app import create_app as create_ingest
        from functions.webhook.app import create_app as create_webhook

        web_dir = PROJECT_ROOT / "web"
        admin = create_admin(c.settings, c)
        api_v1 = create_api_v1(c.settings, c)
        self._routes = [
            ("/ingest/", create_ingest(c.settings, c)),
            ("/api/v1/", api_v1),  # before "/api/": the machine clients' API
            # ArtMancer's paths (seed 002) are the machine clients' API too, at the seed's own paths.
            *((prefix, api_v1) for prefix in ARTMANCER_PREFIXES),
            ("/api/", admin),
            ("/public/", admin),
            ("/health", admin),
            ("/metrics", admin),
            ("/webhooks/", create_webhook(c.settings, c)),
        ]
        if web_dir.is_dir():
            self._routes.append(("/", static_site(web_dir)))
        if self.settings.run_worker:
            self.worker = WorkerLoop(
                c.queue,
                c.runner,
                c.hub,
                concurrency=self.settings.worker_concurrency,
                poll_sec=self.settings.fallback_poll_sec,
            )
            await self.worker.start()
            # Task outputs to their callers' writeUrls (tasks.delivery), alongside the worker that makes them.
            from boothbridge.tasks.delivery import DeliveryLoop, TaskDeliveries

            self.deliveries = DeliveryLoop(
                TaskDeliveries(c.pool, c.media, allow_private=self.settings.fetch_allows_private),
                self.settings.task_delivery_poll_sec,
            )
            self.deliveries.start()
        if self.settings.run_cleanup:
            self._cleanup_task = asyncio.create_task(self._cleanup_loop(), name="cleanup-loop")

    async def stop(self, grace_sec: float = 0.0) -> None:
        """Stop the loops; the worker's attempts in flight get `grace_sec` to finish and the rest hand their jobs
        back to the queue (no attempt spent). The emulator's own shutdown (SIGTERM, Ctrl-C) gives
        WORKER_GRACE_SEC."""
        self._stopping.set()
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup_task
        if self.deliveries is not None:
            await self.deliveries.stop()
        if self.worker is not None:
            await self.worker.stop(grace_sec)
        if self.container is not None and self._owns_container:
            await self.container.close()

    async def _cleanup_loop(self) -> None:
        assert self.container is not None
        # Ends on the flag as well as on the cancel: a cancellation swallowed inside a run (3.11's wait_for in a
        # library) must not leave the loop sleeping on and the shutdown waiting for it.
        while not self._stopping.is_set():
            try:
                await self.container.cleanup.run()
            except Exception:
                log.exception("cleanup run failed; will try again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.cleanup_interval_sec):
                    await self._stopping.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        for prefix, app in self._routes:
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                await app(scope, receive, send)
                return
        await _not_found(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop(self.settings.worker_grace_sec)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(error_body("not_found", "no such endpoint"), status_code=404)
    await response(scope, receive, send)


def static_site(web_dir: Path) -> FastAPI:
    """The web UI's static files, with the uniform error body for anything missing."""
    site = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(site)
    site.mount("/", StaticFiles(directory=web_dir, html=True))
    return site


def create_app(settings: Settings | None = None, container: Container | None = None) -> Emulator:
    return Emulator(settings or Settings(), container)
