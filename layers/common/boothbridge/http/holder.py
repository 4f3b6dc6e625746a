"""The container for one app: given (tests, the emulator) or built lazily on first use (Lambda)."""

from __future__ import annotations

import asyncio

from boothbridge.container import Container, build_container
from boothbridge.settings import Settings


class ContainerHolder:
    """Lambda keeps one event loop per warm execution environment (Mangum reuses it), so the container is
    built on the first request and reused by every later one; nothing heavy happens at import time."""

    def __init__(self, settings: Settings | None = None, container: Container | None = None, *, listen: bool) -> None:
        self._settings = settings
        self._container = container
        self._listen = listen
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Container:
        if self._container is not None:
            return self._container
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._container is None:
                self._container = await build_container(self._settings or Settings(), listen=self._listen)
        return self._container
