"""Running a function module the way a Lambda execution environment would, configured from env vars."""

from __future__ import annotations

import json
from typing import Any

import functions.worker.handler as worker
from boothbridge.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce `settings` (what a Lambda's configuration would hold)."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[name.upper()] = json.dumps(value) if isinstance(value, list) else str(value)
    return env


def invoke_worker(event: dict[str, Any]) -> dict[str, Any]:
    """One worker execution environment (call in its own thread); its cached container is released after."""
    try:
        return worker.handler(event, None)
    finally:
        loop = worker._loop()
        if worker._container is not None:
            loop.run_until_complete(worker._container.close())
            worker._container = None
        loop.close()
        worker._event_loop = None
