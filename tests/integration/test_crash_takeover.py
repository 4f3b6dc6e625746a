"""The crash scenario: a worker process dies (SIGKILL) in the middle of a provider call; once its lease runs
out another worker takes the job over as attempt 2, the booth still gets its photo, exactly one result is
stored, and the dead attempt's late completion is refused."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.worker_process import WorkerProcess, sleepy_calls, worker_processes

pytestmark = pytest.mark.slow

__all__ = ["worker_processes"]  # the fixture, used by name

LEASE_SEC = 2
HEARTBEAT_SEC = 0.5
DELAY_SEC = 3


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_worker": False, "lease_sec": LEASE_SEC, "heartbeat_sec": HEARTBEAT_SEC, "t_sync_response": 30}


async def _job(c: Container, job_id: uuid.UUID | str) -> Any:
    async with c.engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT id, status, attempt, lease_owner, result_media_id FROM jobs WHERE id = :id"),
                {"id": job_id},
            )
        ).one()


async def _lease_expires_at(c: Container, job_id: str) -> datetime:
    async with c.engine.connect() as conn:
        value: datetime = (
            await conn.execute(text("SELECT lease_expires_at FROM jobs WHERE id = :id"), {"id": job_id})
        ).scalar_one()
    return value


async def _attempt_and_db_now(c: Container, job_id: str) -> tuple[int, datetime]:
    async with c.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT attempt, clock_timestamp() AS db_now FROM jobs WHERE id = :id"), {"id": job_id}
            )
        ).one()
    return row.attempt, row.db_now


async def test_killed_worker_is_taken_over_and_its_late_result_is_fenced_out(
    client: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    worker_processes: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {"delay_sec": DELAY_SEC})
    assert r.status_code == 200, r.text
    password = credentials(settings.credentials_path)["ingest_password"]
    calls_file = tmp_path / "sleepy_calls.txt"

    doomed = WorkerProcess(settings, calls_file, tmp_path / "worker1.log")
    worker_processes.append(doomed)
    await doomed.wait_ready(timeout=15)

    photo = jpeg(320, 240)
    ingest = asyncio.create_task(post_photo(client, "slot-001", photo, password))
    takeover: WorkerLoop | None = None
    try:
        # The child process starts attempt 1 (its provider call writes a line, then sleeps DELAY_SEC).
        started = time.monotonic()
        while not sleepy_calls(calls_file):
            assert not ingest.done(), ingest.result().text if not ingest.cancelled() else "cancelled"
            assert time.monotonic() - started < 10, f"the worker never called the provider:\n{doomed.output()}"
            await asyncio.sleep(0.02)
        [(job_id, attempt, pid)] = sleepy_calls(calls_file)
        assert (attempt, pid) == (1, doomed.pid)
        row = await _job(container, job_id)
        assert (row.status, row.attempt) == ("running", 1)
        assert f":{doomed.pid}:" in row.lease_owner

        doomed.kill()  # SIGKILL mid-call: no cleanup, no result, the lease just stops being renewed
        dead_lease = await _lease_expires_at(container, job_id)

        takeover = WorkerLoop(container.queue, container.runner, container.hub, concurrency=4, poll_sec=0.2)
        await takeover.start()
        # Nobody may take the job while the dead worker's lease is still valid; right after it, someone must.
        seen_before_expiry = 0
        while True:
            attempt, db_now = await _attempt_and_db_now(container, job_id)
            if attempt == 2:
                break
            assert attempt == 1
            seen_before_expiry += db_now < dead_lease
            assert (db_now - dead_lease).total_seconds() < 5, "the expired lease was not taken over"
            await asyncio.sleep(0.05)
        assert db_now >= dead_lease, "attempt 2 started while attempt 1's lease was still valid"
        assert seen_before_expiry > 0
        response = await asyncio.wait_for(ingest, 25)
    finally:
        if takeover is not None:
            await takeover.stop()
        if not ingest.done():
            ingest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ingest

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == photo  # sleepy echoes the booth's photo
    assert response.headers["x-job-id"] == job_id
    # Attempt 2 ran here, in this process; the dead process made only attempt 1.
    assert SleepyProvider.calls == [(job_id, 2)]
    assert [(a, p) for _, a, p in sleepy_calls(calls_file)] == [(1, doomed.pid)]

    row = await _job(container, job_id)
    assert (row.status, row.attempt) == ("succeeded", 2)
    assert row.lease_owner is None
    async with container.engine.connect() as conn:
        results = (
            await conn.execute(
                text("SELECT id FROM media_objects WHERE job_id = :id AND kind = 'result'"), {"id": job_id}
            )
        ).all()
    assert [r.id for r in results] == [row.result_media_id]

    # The killed attempt "finishes late" (as a hung worker waking up would): fenced out, nothing changes.
    late = await container.media.write_bytes("result", jpeg(16, 16), "image/jpeg")
    done = await container.queue.complete(uuid.UUID(job_id), 1, late, datetime.now(UTC) + timedelta(hours=1), cost=0.01)
    assert done is None
    after = await _job(container, job_id)
    assert (after.status, after.attempt, after.result_media_id) == ("succeeded", 2, row.result_media_id)
    async with container.engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM media_objects WHERE job_id = :id AND kind = 'result'"), {"id": job_id}
            )
        ).scalar_one()
    assert count == 1
