"""The container for one app: given (tests, the emulator) or built lazily on first use (Lambda)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mangum import Mangum

if TYPE_CHECKING:
    from boothbridge.bootstrap import Container
    from boothbridge.settings import Settings


class ContainerHolder:
    """Lambda keeps one event loop per warm execution environment (Mangum reuses it), so the container is
    built on the first request and reused by every later one; nothing heavy happens at import time: the
    composition root (and with it SQLAlchemy, psycopg, the catalog's jsonschema, ...) is imported by that first
    build, not by the function module (issue 13: a function's cold import stays near a bare FastAPI app's)."""

    def __init__(self, settings: Settings | None = None, container: Container | None = None, *, listen: bool) -> None:
        self._settings = settings
        self._container = container
        self._built_here = False
        self._listen = listen
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Container:
        if self._container is not None:
            return self._container
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._container is None:
                from boothbridge.bootstrap import build_container
                from boothbridge.settings import Settings

                self._container = await build_container(self._settings or Settings(), listen=self._listen)
                self._built_here = True
        return self._container

    async def close(self) -> None:
        """Release a container this holder built (a given container belongs to whoever gave it)."""
        if self._container is not None and self._built_here:
            await self._container.close()
            self._container = None


class LazyMangum:
    """`handler = LazyMangum(create_app)`: a Mangum(app) built on the first Lambda invocation, not at import, from
    the one Settings object that invocation reads (the factory is called with it, so the logging set-up and the app
    share it).

    Mangum sets up an event loop when constructed; deferring it keeps importing a function module free of side
    effects (cheap cold start, and importable by tests and tools).
    """

    def __init__(self, factory: Callable[[Settings], Any]) -> None:
        self._factory = factory
        self._mangum: Mangum | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if self._mangum is None:
            from boothbridge.platform.logs import configure_logging
            from boothbridge.settings import Settings

            settings = Settings()
            configure_logging(settings.log_format, settings.log_level)  # JSON lines on Lambda
            self._mangum = Mangum(self._factory(settings), lifespan="off")
        return self._mangum(event, context)
