"""An adapter's HTTP client for the life of the process (AWS Powertools' rule: clients built once per process).

httpx's client belongs to the event loop it first ran in; a Lambda execution environment may run a later
invocation in a new loop, so a new loop gets a new client (the old one is left to the collector with its loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx


def provider_client(request_timeout_sec: float, connect_timeout_sec: float) -> httpx.AsyncClient:
    """The client a provider adapter talks to its service with: its timeouts, a bounded pool, our User-Agent."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout_sec, connect=connect_timeout_sec),
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        headers={"User-Agent": "boothbridge"},
    )


class LoopClient:
    """`client()` is the client of the running event loop, made by `make` on first use in that loop; `aclose()`
    closes the current one (the adapter's `close`)."""

    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self._make = make
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._make()
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client, self._loop = self._client, None, None
            await client.aclose()
