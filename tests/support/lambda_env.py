"""Running a function module the way a Lambda execution environment would, configured from env vars."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import functions.cleanup.handler as cleanup
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


class LambdaContext:
    """The part of the Lambda context object the handlers use."""

    def __init__(self, remaining_sec: float) -> None:
        self.remaining_sec = remaining_sec

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_sec * 1000)


def _in_environment(module: Any, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """One execution environment (call in its own thread); its container and loop are released after."""
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.handler
    try:
        return handler(event, context)
    finally:
        module.runtime.shutdown()


def invoke_worker(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return _in_environment(worker, event, context)


def invoke_cleanup(event: dict[str, Any]) -> dict[str, Any]:
    return _in_environment(cleanup, event)
