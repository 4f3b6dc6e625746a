"""A worker process killed with SIGKILL during step 2 of a pipeline: once its lease runs out another worker resumes
the job at step 2 — step 1's provider is not called again — and the job ends with step 2's result."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.model import NewJob
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import jpeg
from tests.support.worker_process import WorkerProcess, sleepy_calls, worker_processes

pytestmark = pytest.mark.slow

__all__ = ["worker_processes"]  # the fixture, used by name

STEP_2_SEC = 4


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_worker": False, "lease_sec": 2, "heartbeat_sec": 0.5}


async def test_a_worker_killed_in_step_two_is_resumed_at_step_two(
    settings: Settings, container: Container, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    calls_file = tmp_path / "sleepy_calls.txt"
    doomed = WorkerProcess(settings, calls_file, tmp_path / "worker1.log")
    worker_processes.append(doomed)
    await doomed.wait_ready(timeout=15)

    photo = jpeg(320, 240)
    source = await container.media.write_bytes("source", photo, "image/jpeg")
    now = datetime.now(UTC)
    steps = [
        {"provider_id": "sleepy", "operation_id": "echo", "settings_json": {}, "alternatives": [], "optional": False},
        {
            "provider_id": "sleepy",
            "operation_id": "echo",
            "settings_json": {"delay_sec": STEP_2_SEC},
            "alternatives": [],
            "optional": False,
        },
    ]
    new = NewJob(
        id=uuid.uuid4(),
        slot_id="slot-001",
        provider_id="sleepy",
        operation_id="echo",
        settings_json={},
        source_media_id=source.id,
        source_sha256=hashlib.sha256(photo).hexdigest(),
        max_attempts=2,
        deadline_at=now + timedelta(seconds=60),
        request_meta={},
        pipeline={"steps": steps, "finishing": {}, "max_attempts": 2},
    )
    job, created = await container.queue.enqueue(new, source, now + timedelta(minutes=10))
    assert created and job is not None

    # The child runs step 1 (attempt 1), moves the job on, and starts step 2 (attempt 2, sleeping STEP_2_SEC).
    for _ in range(400):
        if len(sleepy_calls(calls_file)) == 2:
            break
        await asyncio.sleep(0.025)
    assert [(a, pid) for _, a, pid in sleepy_calls(calls_file)] == [(1, doomed.pid), (2, doomed.pid)], doomed.output()
    doomed.kill()

    takeover = WorkerLoop(container.queue, container.runner, container.hub, concurrency=2, poll_sec=0.2)
    await takeover.start()
    try:
        for _ in range(600):
            async with container.engine.connect() as conn:
                row = (await conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job.id})).one()
            if row.status == "succeeded":
                break
            await asyncio.sleep(0.05)
    finally:
        await takeover.stop()

    assert (row.status, row.step_index, row.attempt, row.lease_expiries) == ("succeeded", 1, 3, 1)
    assert SleepyProvider.calls == [(str(job.id), 3)]  # only step 2 ran here, as attempt 3
    assert len(sleepy_calls(calls_file)) == 2  # step 1's provider was called once, by the dead worker
    async with container.engine.connect() as conn:
        records = (await conn.execute(text("SELECT * FROM job_steps WHERE job_id = :id"), {"id": job.id})).all()
    assert [(r.step_index, r.status, r.attempts) for r in records] == [(0, "succeeded", 1)]
    data, _ = await container.media.read(row.result_media_id)
    assert data == photo  # sleepy echoes what it is given: step 1's output of the booth's photo
