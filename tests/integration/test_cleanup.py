"""The cleanup function called as EventBridge calls it, and what one pass does."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.integration.test_queue import enqueue
from tests.support.lambda_env import invoke_cleanup, settings_env
from tests.support.storage import bucket_keys

EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_worker": False}


async def test_scheduled_event_removes_expired_media(
    settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    past = datetime.now(UTC) - timedelta(seconds=5)
    expired = await container.media.save("source", b"\xff\xd8\xff old photo", "image/jpeg", past)
    kept = await container.media.save("template", b"\x89PNG frame", "image/png", None)
    event = json.loads((EVENTS / "cleanup_schedule.json").read_text())

    report = await asyncio.to_thread(invoke_cleanup, event)

    assert report == {"ok": True, "media_removed": 1, "callbacks_abandoned": 0, "jobs_redispatched": 0}
    keys = bucket_keys(settings)
    assert expired.storage_key not in keys and kept.storage_key in keys
    again = await asyncio.to_thread(invoke_cleanup, event)  # idempotent
    assert again["media_removed"] == 0


async def test_stale_work_is_handed_to_the_workers_again(container: Container) -> None:
    sent: list[Any] = []

    async def record(job_id: Any) -> None:
        sent.append(job_id)

    container.dispatcher.dispatch = record  # type: ignore[method-assign]
    fresh, _, _ = await enqueue(container)
    old, _, _ = await enqueue(container)
    dead, _, _ = await enqueue(container)
    assert fresh and old and dead
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET run_after = now() - interval '1 minute' WHERE id = :id"), {"id": old.id}
        )
        await conn.execute(
            text(
                "UPDATE jobs SET status = 'running', attempt = 1, lease_expires_at = now() - interval '1 second'"
                " WHERE id = :id"
            ),
            {"id": dead.id},
        )
    report = await container.cleanup.run()
    assert report.jobs_redispatched == 2
    assert set(sent) == {old.id, dead.id}
