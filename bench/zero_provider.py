"""Benchmark provider plugins: `zero` answers at once, `slow` holds every job until released.

Registered through `provider_plugins=["bench.zero_provider:ZeroProvider", "bench.zero_provider:SlowProvider"]`
with the catalog written by `zero_catalog()`. Both return the source image unchanged, so whatever time an ingest
takes beyond the provider call is the bridge's own.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from boothbridge.providers.base import ProviderRequest, ProviderResult, in_memory
from boothbridge.settings import PROJECT_ROOT, Settings

ZERO_PROVIDER_ID = "zero"
ZERO_OPERATION_ID = "passthrough"
SLOW_PROVIDER_ID = "slow"
SLOW_OPERATION_ID = "slow"

_PASSTHROUGH_OPERATION = {
    "title": "Passthrough (benchmark)",
    "description": "Benchmark provider: returns the photo unchanged, at once.",
    "required_settings": [],
    "provider_overrides": {},
    "settings_schema": {"type": "object", "properties": {}, "additionalProperties": False},
}

_SLOW_OPERATION = {
    "title": "Slow passthrough (benchmark)",
    "description": "Benchmark provider: returns the photo unchanged after delay_sec, or earlier once released.",
    "required_settings": [],
    "provider_overrides": {},
    "settings_schema": {
        "type": "object",
        "properties": {"delay_sec": {"type": "number", "minimum": 0, "maximum": 120, "default": 5}},
        "additionalProperties": False,
    },
}


def _provider_entry(provider_id: str, title: str, operation_id: str, max_parallel_jobs: int) -> dict[str, Any]:
    return {
        "id": provider_id,
        "title": title,
        "ingest": {
            "max_parallel_jobs": max_parallel_jobs,
            "timeout_sec": 30 if provider_id == ZERO_PROVIDER_ID else 60,
            "allowed_mime": ["image/jpeg", "image/png"],
            "max_file_size_mb": 20,
        },
        "operations": [operation_id],
        "pricing": {"currency": "USD", "per_image": 0},
    }


def zero_catalog(path: Path, max_parallel_jobs: int = 64) -> Path:
    """Write the product catalog plus the `zero` (and `slow`) benchmark providers to `path`; returns `path`."""
    catalog = json.loads((PROJECT_ROOT / "configs" / "providers.json").read_text(encoding="utf-8"))
    catalog["providers"].append(
        _provider_entry(ZERO_PROVIDER_ID, "Zero latency (benchmark)", ZERO_OPERATION_ID, max_parallel_jobs)
    )
    catalog["providers"].append(
        _provider_entry(SLOW_PROVIDER_ID, "Slow (benchmark)", SLOW_OPERATION_ID, max_parallel_jobs)
    )
    catalog["operations"][ZERO_OPERATION_ID] = _PASSTHROUGH_OPERATION
    catalog["operations"][SLOW_OPERATION_ID] = _SLOW_OPERATION
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return path


class ZeroProvider:
    """Returns the source image immediately: no I/O, no CPU work, no cost."""

    id = ZERO_PROVIDER_ID

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    async def run(self, request: ProviderRequest) -> ProviderResult:
        return ProviderResult(image=await in_memory(request.source), cost=0.0)

    async def close(self) -> None:
        return None


class SlowProvider:
    """Returns the source image after the slot's `delay_sec`, or as soon as `release()` is called.

    The benchmark uses it to keep many ingests waiting at once and then lets them all finish together.
    """

    id = SLOW_PROVIDER_ID

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self._released = asyncio.Event()
        self.started = 0  # attempts begun so far

    def release(self) -> None:
        """Let every held attempt (and every later one) finish at once."""
        self._released.set()

    def hold(self) -> None:
        """Hold attempts again (after `release()`)."""
        self._released.clear()

    async def run(self, request: ProviderRequest) -> ProviderResult:
        self.started += 1
        delay = float(request.settings.get("delay_sec", 5))
        if not self._released.is_set():
            try:
                await asyncio.wait_for(self._released.wait(), delay)
            except TimeoutError:
                pass
        return ProviderResult(image=await in_memory(request.source), cost=0.0)

    async def close(self) -> None:
        return None
