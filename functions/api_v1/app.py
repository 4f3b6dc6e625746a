"""Machine-client API facade (`/api/v1/*`, issue 15): the FastAPI app the task and AIGE routers live in (and
ArtMancer's, issue 16, at the seed's own paths `/api/generate*`, `/api/smart-mask*`, `/api/image-utils/*`), with the
house's middleware, error handlers and OpenAPI fix-ups. Callers authenticate with an operator's API key
(`functions.api_v1.deps.ClientDep`), never an operator's JWT; each key has its own rate limit.

Importing this module stays cheap (a Lambda cold start, issue 13; tests/unit/test_cold_import.py keeps it so): the
composition root, SQLAlchemy, psycopg and `limits` come with the first request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from boothbridge.accounts.rate_limit import KeyRateLimiter
from boothbridge.http.errors import install_error_handlers
from boothbridge.http.holder import ContainerHolder, LazyMangum
from boothbridge.http.openapi import install_openapi
from boothbridge.http.request_id import RequestIdMiddleware
from boothbridge.http.url_checks import no_nul_in_url
from functions.api_v1.routes import aige, artmancer_generate, artmancer_masks, tasks

if TYPE_CHECKING:
    from boothbridge.bootstrap import Container
    from boothbridge.settings import Settings

ROUTERS = (tasks.router, aige.router, artmancer_generate.router, artmancer_masks.router)


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """The machine-client API. `container` is used as given (tests, the emulator); without one the holder builds it
    on the first request (Lambda) from `settings` (default: `Settings()` from the environment)."""
    app = FastAPI(
        title="boothbridge machine-client API",
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
        dependencies=[Depends(no_nul_in_url)],  # a NUL in a path or query value: 400, never a database error
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)  # X-Request-Id; the id on every log line of the request
    install_openapi(app)
    if settings is None:
        from boothbridge.settings import Settings  # deferred: pydantic-settings, only when none is given

        settings = container.settings if container else Settings()
    origins = settings.web_origin_list
    if origins:  # browser-based machine clients on the listed origins (as the operator API allows its UI)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "X-Request-Id"],
            max_age=600,
        )
    # listen=True: a task's answer may wait on its job through the process's LISTEN connection.
    app.state.holder = ContainerHolder(settings, container, listen=True)
    # One per app, so its counts (in memory by default) outlive a request; `limits` is imported by its first check.
    app.state.key_limiter = KeyRateLimiter(settings.api_key_rate_limit, settings.rate_limit_storage_uri)
    for router in ROUTERS:
        app.include_router(router)
    return app


handler = LazyMangum(create_app)
