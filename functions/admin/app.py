"""Operator API facade: the FastAPI app, its middleware and error handlers, and the routers of `routes/`.

The routes reach the container through `functions.admin.deps` (`request.app.state.holder`), so `create_app` only
builds the app and the holder; each test and the emulator build their own app around their own container.

Importing this module stays cheap (a Lambda cold start, issue 13): the composition root, SQLAlchemy, psycopg and
the rest come with the first request's container; the container's and the settings' types are for annotations
only (tests/unit/test_cold_import.py keeps it so)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from boothbridge.http.errors import install_error_handlers
from boothbridge.http.holder import ContainerHolder, LazyMangum
from boothbridge.http.openapi import install_openapi
from boothbridge.http.request_id import RequestIdMiddleware
from functions.admin.deps import no_nul_in_url
from functions.admin.routes import api_keys, auth, health, jobs, media, providers, slot_test_runs, slots, stats
from functions.admin.routes import settings as settings_page

if TYPE_CHECKING:
    from boothbridge.bootstrap import Container
    from boothbridge.settings import Settings

ROUTERS = (
    auth.router,
    providers.router,
    slots.router,
    media.router,
    stats.router,
    health.router,
    jobs.router,
    slot_test_runs.router,
    settings_page.router,
    api_keys.router,
)


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """The operator API. `container` is used as given (tests, the emulator); without one the holder builds it on
    the first request (Lambda) from `settings` (default: `Settings()` from the environment)."""
    app = FastAPI(
        title="boothbridge operator API",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        dependencies=[Depends(no_nul_in_url)],
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)  # X-Request-Id; the id on every log line of the request
    install_openapi(app)
    # Resolved once, here (first invocation on Lambda, not import): CORS needs it now, the container later.
    if settings is None:
        from boothbridge.settings import Settings  # deferred: pydantic-settings, only when none is given

        settings = container.settings if container else Settings()
    origins = settings.web_origin_list
    if origins:  # the web UI deployed as a static site on another origin calls this API from the browser
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "X-Job-Id", "X-Processing-Ms"],
            max_age=600,
        )
    # listen=True: slot test runs and job event streams wait on jobs through the process's LISTEN connection.
    app.state.holder = ContainerHolder(settings, container, listen=True)
    for router in ROUTERS:
        app.include_router(router)
    return app


handler = LazyMangum(create_app)
