"""The worker function called the way AWS calls it: an asynchronous invoke with `{"job_id": ...}`."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boothbridge.bootstrap import Container
from boothbridge.jobs.model import NewJob
from boothbridge.settings import Settings
from tests.integration.test_queue import enqueue
from tests.support.booth import jpeg
from tests.support.lambda_env import LambdaContext, invoke_worker, settings_env

EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.mark.parametrize("settings_overrides", [{"run_worker": False}])
async def test_worker_event_runs_the_job(
    settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    photo = jpeg(640, 480)
    source = await container.media.write_bytes("source", photo, "image/jpeg")
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    _, created = await container.queue.enqueue(
        NewJob(
            id=job_id,
            slot_id="slot-001",
            provider_id="local",
            operation_id="reframe",
            settings_json={"aspect_ratio": "16:9"},
            source_media_id=source.id,
            source_sha256=source.sha256,
            max_attempts=3,
            deadline_at=now + timedelta(minutes=2),
            request_meta={},
        ),
        source,
        now + timedelta(minutes=2),
    )
    assert created
    event = json.loads((EVENTS / "worker_invoke.json").read_text())
    event["job_id"] = str(job_id)

    result = await asyncio.to_thread(invoke_worker, event)

    assert result == {"ok": True, "job_id": str(job_id), "status": "succeeded", "also_ran": 0}
    done = await container.queue.get(job_id)
    assert done is not None and done.status == "succeeded" and done.attempt == 1
    assert done.result_media_id is not None
    data, ref = await container.media.read(done.result_media_id)
    assert ref.kind == "result" and data[:3] == b"\xff\xd8\xff"

    # A second delivery of the same event (Lambda retries async invokes) finds nothing to do.
    again = await asyncio.to_thread(invoke_worker, event)
    assert again["status"] == "succeeded"
    assert (await container.queue.get(job_id)).attempt == 1  # type: ignore[union-attr]


async def test_worker_event_without_job_id_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    result = await asyncio.to_thread(invoke_worker, {"reason": "ingest"})
    assert result["ok"] is False


@pytest.mark.parametrize("settings_overrides", [{"run_worker": False}])
async def test_a_worker_with_time_left_also_runs_other_queued_jobs(
    settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    first, _, _ = await enqueue(container)
    second, _, _ = await enqueue(container)
    assert first and second
    plenty = LambdaContext(remaining_sec=200)
    result = await asyncio.to_thread(invoke_worker, {"job_id": str(first.id)}, plenty)
    assert (result["status"], result["also_ran"]) == ("succeeded", 1)
    assert (await container.queue.get(second.id)).status == "succeeded"  # type: ignore[union-attr]

    third, _, _ = await enqueue(container)
    assert third
    short = LambdaContext(remaining_sec=30)  # not enough left for another attempt
    fourth, _, _ = await enqueue(container)
    assert fourth
    result = await asyncio.to_thread(invoke_worker, {"job_id": str(third.id)}, short)
    assert result["also_ran"] == 0
    assert (await container.queue.get(fourth.id)).status == "queued"  # type: ignore[union-attr]
