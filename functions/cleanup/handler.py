"""Cleanup entry point: `handler(event, context)` for an EventBridge scheduled event."""

from __future__ import annotations

from typing import Any

from boothbridge.bootstrap import Container
from boothbridge.platform.lambda_loop import HandlerRuntime

runtime = HandlerRuntime()


async def _clean(c: Container) -> dict[str, Any]:
    report = await c.cleanup.run()
    return {"ok": True, **report.as_dict()}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run one cleanup pass (every schedule tick does the same work, whatever the event carries)."""
    return runtime.run(_clean, context)
