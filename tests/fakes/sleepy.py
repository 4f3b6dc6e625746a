"""A controllable provider for queue tests: waits, fails on request, and counts its calls.

Registered through `PROVIDER_PLUGINS=tests.fakes.sleepy:SleepyProvider` with the `sleepy` catalog entry from
`sleepy_catalog()`. Settings: `delay_sec` (how long an attempt takes), `fail_first` (this many attempts fail
with a retryable error first), `fail_always` (every attempt fails, not retryable), `html_answer` (attempt 1
parses an HTML page as JSON, as an adapter meeting a provider's error page would). Calls are appended to the
file named by env `SLEEPY_CALLS_FILE` (one line per call: job id, attempt, pid) so tests can count calls made
in other processes too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from boothbridge.providers.base import (
    ImageInput,
    ProviderError,
    ProviderParked,
    ProviderRequest,
    ProviderResult,
    in_memory,
)
from boothbridge.settings import PROJECT_ROOT, Settings

SLEEPY_OPERATION = {
    "title": "Echo after a delay",
    "description": "Test provider: returns the photo unchanged after delay_sec.",
    "required_settings": [],
    "provider_overrides": {},
    "settings_schema": {
        "type": "object",
        "properties": {
            "delay_sec": {"type": "number", "minimum": 0, "maximum": 120, "default": 0},
            "fail_first": {"type": "integer", "minimum": 0, "maximum": 10, "default": 0},
            "fail_always": {"type": "boolean", "default": False},
            "park": {"type": "boolean", "default": False},
            "html_answer": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    },
}


def sleepy_catalog(path: Path, max_parallel_jobs: int = 4, timeout_sec: float = 60) -> Path:
    """Write the product catalog plus the `sleepy` provider to `path`; returns `path`."""
    catalog = json.loads((PROJECT_ROOT / "configs" / "providers.json").read_text())
    catalog["providers"].append(
        {
            "id": "sleepy",
            "title": "Sleepy (test)",
            "ingest": {
                "max_parallel_jobs": max_parallel_jobs,
                "timeout_sec": timeout_sec,
                "allowed_mime": ["image/jpeg", "image/png"],
                "max_file_size_mb": 20,
            },
            "operations": ["echo"],
        }
    )
    catalog["operations"]["echo"] = SLEEPY_OPERATION
    path.write_text(json.dumps(catalog))
    return path


class SleepyProvider:
    id = "sleepy"
    calls: ClassVar[list[tuple[str, int]]] = []  # in-process record: (job id, attempt)
    webhook_urls: ClassVar[dict[str, str | None]] = {}  # job id -> the webhook URL it was given

    def __init__(self, settings: Settings) -> None:
        self.calls_file = os.environ.get("SLEEPY_CALLS_FILE")

    async def run(self, request: ProviderRequest) -> ProviderResult:
        SleepyProvider.calls.append((request.job_id, request.attempt))
        if self.calls_file:
            with open(self.calls_file, "a", encoding="utf-8") as f:
                f.write(f"{request.job_id} {request.attempt} {os.getpid()}\n")
        SleepyProvider.webhook_urls[request.job_id] = request.webhook_url
        settings: dict[str, Any] = request.settings
        await asyncio.sleep(float(settings.get("delay_sec", 0)))
        if settings.get("park"):
            if request.webhook_url is None:
                raise ProviderError("webhook_unavailable", "no public webhook address", retryable=False)
            return ProviderParked(provider_ref=f"sleepy-{request.job_id}")
        if settings.get("html_answer") and request.attempt == 1:
            json.loads("<html><body>502 Bad Gateway</body></html>")  # as an adapter parsing an HTML page would
        if settings.get("fail_always"):
            raise ProviderError("upstream_rejected", "the test provider refuses this photo", retryable=False)
        if request.attempt <= int(settings.get("fail_first", 0)):
            raise ProviderError("upstream_unavailable", "the test provider is briefly down", retryable=True)
        return ProviderResult(image=await in_memory(request.source), cost=0.01)

    async def result_from_callback(self, payload: dict[str, Any], *, deadline: float | None = None) -> ProviderResult:
        """Callback body: {"image_b64": ..., "mime": ...} or {"error": "..."}."""
        if "error" in payload:
            raise ProviderError("upstream_rejected", str(payload["error"]), retryable=False)
        return ProviderResult(image=ImageInput(base64.b64decode(payload["image_b64"]), payload["mime"]), cost=0.02)

    async def close(self) -> None:
        return None
