"""A benchmark provider for a server in another process: holds every job until a file exists.

`bench.big_waiters` runs the product as `python -m local` (its own process), so it cannot call
`SlowProvider.release()` there. `HeldProvider` is the `slow` provider of `bench.zero_provider` (same id, same
catalog entry from `zero_catalog()`), registered with
`PROVIDER_PLUGINS='["bench.zero_provider:ZeroProvider", "bench.held_provider:HeldProvider"]'`; it returns the
source image unchanged once the file named by the environment variable `BB_BENCH_RELEASE_FILE` exists (checked
every POLL_SEC), or after the slot's `delay_sec` at the latest. Deleting the file holds the next attempts again.
A held attempt holds no photo: it reads the worker's spool file (or the stored object) only when it answers.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bench.zero_provider import SlowProvider
from boothbridge.providers.base import ProviderRequest, ProviderResult, in_memory
from boothbridge.settings import Settings

RELEASE_ENV = "BB_BENCH_RELEASE_FILE"
POLL_SEC = 0.1  # a held attempt looks for the file this often: answers follow the release within about this


class HeldProvider(SlowProvider):
    """`slow`/`slow`, released by a file (see the module docstring) as well as by `release()`."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        named = os.environ.get(RELEASE_ENV)
        self.release_file = Path(named) if named else None

    def _released_now(self) -> bool:
        return self._released.is_set() or (self.release_file is not None and self.release_file.exists())

    async def run(self, request: ProviderRequest) -> ProviderResult:
        self.started += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(request.settings.get("delay_sec", 5))
        while not self._released_now() and loop.time() < deadline:
            await asyncio.sleep(POLL_SEC)
        return ProviderResult(image=await in_memory(request.source), cost=0.0)
