"""Stopping a worker: SIGTERM is a graceful stop (the job is handed back without spending an attempt and another
worker takes it at once, or finished within the grace period), however often it happens during one job; SIGKILL
is a worker that died (its lease runs out, the takeover counts a lease expiry, and MAX_LEASE_EXPIRIES of them
fail the job as `lease_expired`). The same hand-back on Lambda, before the function's own timeout."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.integration.test_queue import new_job
from tests.support.lambda_env import invoke_worker, settings_env
from tests.support.worker_process import WorkerProcess, sleepy_calls, worker_processes

pytestmark = pytest.mark.slow

__all__ = ["worker_processes"]  # the fixture, used by name


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The default lease: a job handed back is taken long before a lease like this could run out.
    return {"run_worker": False, "lease_sec": 30, "heartbeat_sec": 10, "fallback_poll_sec": 0.3}


def start_worker(settings: Settings, calls_file: Path, log_file: Path, **env: str) -> WorkerProcess:
    """A worker process that polls as often as this module's own settings say (it is told of new work anyway)."""
    return WorkerProcess(settings, calls_file, log_file, FALLBACK_POLL_SEC=str(settings.fallback_poll_sec), **env)


async def wait_for_call(path: Path, count: int, worker: WorkerProcess | None = None) -> list[tuple[str, int, int]]:
    deadline = time.monotonic() + 40
    while len(sleepy_calls(path)) < count:
        if worker is not None:
            assert worker.proc.poll() is None, worker.output()
        assert time.monotonic() < deadline, worker.output() if worker else "no provider call"
        await asyncio.sleep(0.02)
    return sleepy_calls(path)


async def row(c: Container, job_id: uuid.UUID) -> Any:
    async with c.engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT status, attempt, max_attempts, lease_expiries, lease_owner, lease_expires_at,"
                    " attempt_errors, error_code, clock_timestamp() AS db_now FROM jobs WHERE id = :id"
                ),
                {"id": job_id},
            )
        ).one()


async def wait_status(c: Container, job_id: uuid.UUID, *statuses: str) -> Any:
    deadline = time.monotonic() + 60
    while (current := await row(c, job_id)).status not in statuses:
        assert time.monotonic() < deadline, f"job stayed {current.status}"
        await asyncio.sleep(0.05)
    return current


async def test_sigterm_hands_the_job_back_and_another_worker_takes_it_at_once(
    settings: Settings, container: Container, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    calls_file = tmp_path / "calls.txt"
    stopping = start_worker(settings, calls_file, tmp_path / "a.log", WORKER_GRACE_SEC="0.5")
    worker_processes.append(stopping)
    await stopping.wait_ready()
    job = await new_job(container, settings_json={"delay_sec": 5})
    [(job_id, attempt, pid)] = await wait_for_call(calls_file, 1, stopping)
    assert (job_id, attempt, pid) == (str(job.id), 1, stopping.pid)
    held = await row(container, job.id)
    assert (held.status, held.attempt) == ("running", 1)
    lease_until: datetime = held.lease_expires_at

    signalled = time.monotonic()
    stopping.signal(signal.SIGTERM)
    assert await stopping.wait_exit() == 0, stopping.output()
    assert "handed back" in stopping.output()

    handed = await row(container, job.id)
    print(
        f"handed back and exited {time.monotonic() - signalled:.1f} s after SIGTERM (grace 0.5 s); the lease had"
        f" {(lease_until - handed.db_now).total_seconds():.1f} s left"
    )
    # Requeued at once with its attempt restored: nothing spent, nothing counted, nobody waits for the lease.
    assert (handed.status, handed.attempt, handed.lease_owner, handed.lease_expiries) == ("queued", 0, None, 0)
    assert handed.db_now < lease_until
    assert handed.attempt_errors == []

    other = WorkerLoop(container.queue, container.runner, container.hub, concurrency=2, poll_sec=0.3)
    await other.start()
    try:
        done = await wait_status(container, job.id, "succeeded", "failed")
    finally:
        await other.stop()
    print(f"finished by another worker {time.monotonic() - signalled:.1f} s after SIGTERM (the call takes 5 s)")
    assert (done.status, done.attempt, done.max_attempts, done.lease_expiries) == ("succeeded", 1, 3, 0)
    assert done.attempt_errors == []
    assert SleepyProvider.calls == [(str(job.id), 1)]  # the other worker's call: attempt 1 again
    assert sleepy_calls(calls_file) == [(str(job.id), 1, stopping.pid)]


async def test_many_graceful_restarts_during_one_job_do_not_fail_it(
    settings: Settings, container: Container, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    calls_file = tmp_path / "calls.txt"
    job = await new_job(container, settings_json={"delay_sec": 30})
    restarts = 4  # more than MAX_ATTEMPTS (3) and MAX_LEASE_EXPIRIES (3)
    for n in range(restarts):
        worker = start_worker(settings, calls_file, tmp_path / f"w{n}.log", WORKER_GRACE_SEC="0.2")
        worker_processes.append(worker)
        await worker.wait_ready()
        made = await wait_for_call(calls_file, n + 1, worker)
        assert made[-1] == (str(job.id), 1, worker.pid)
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0, worker.output()
        handed = await row(container, job.id)
        assert (handed.status, handed.attempt, handed.lease_expiries) == ("queued", 0, 0), worker.output()

    # The job goes on as if nothing had happened: still its first attempt, nothing counted against it.
    async with container.engine.begin() as conn:  # the last worker may finish quickly
        await conn.execute(
            text("UPDATE jobs SET settings_json = '{\"delay_sec\": 0.1}'::jsonb WHERE id = :id"), {"id": job.id}
        )
    last = WorkerLoop(container.queue, container.runner, container.hub, concurrency=2, poll_sec=0.3)
    await last.start()
    try:
        done = await wait_status(container, job.id, "succeeded", "failed")
    finally:
        await last.stop()
    assert (done.status, done.attempt, done.max_attempts, done.lease_expiries) == ("succeeded", 1, 3, 0)
    assert done.attempt_errors == []
    assert [attempt for _, attempt, _ in sleepy_calls(calls_file)] == [1] * restarts


async def test_a_job_that_ends_within_the_grace_period_is_finished_by_the_stopping_worker(
    settings: Settings, container: Container, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    calls_file = tmp_path / "calls.txt"
    worker = start_worker(settings, calls_file, tmp_path / "a.log", WORKER_GRACE_SEC="20")
    worker_processes.append(worker)
    await worker.wait_ready()
    job = await new_job(container, settings_json={"delay_sec": 1.5})
    await wait_for_call(calls_file, 1, worker)
    worker.signal(signal.SIGTERM)
    assert await worker.wait_exit() == 0, worker.output()
    done = await row(container, job.id)
    assert (done.status, done.attempt, done.lease_expiries) == ("succeeded", 1, 0)
    assert sleepy_calls(calls_file) == [(str(job.id), 1, worker.pid)]
    assert "handed back" not in worker.output()


@pytest.mark.parametrize(
    "settings_overrides", [{"run_worker": False, "lease_sec": 2, "heartbeat_sec": 0.5, "fallback_poll_sec": 0.3}]
)
async def test_sigkill_is_a_lease_expiry_and_too_many_fail_the_job(
    settings: Settings, container: Container, worker_processes: list[WorkerProcess], tmp_path: Path
) -> None:
    calls_file = tmp_path / "calls.txt"
    container.queue.max_lease_expiries = 1
    job = await new_job(container, settings_json={"delay_sec": 60})

    first = start_worker(settings, calls_file, tmp_path / "a.log", MAX_LEASE_EXPIRIES="1")
    worker_processes.append(first)
    await first.wait_ready()
    await wait_for_call(calls_file, 1, first)
    first.kill()  # died: no hand-back, the lease just runs out

    second = start_worker(settings, calls_file, tmp_path / "b.log", MAX_LEASE_EXPIRIES="1")
    worker_processes.append(second)
    await second.wait_ready()
    made = await wait_for_call(calls_file, 2, second)
    assert made == [(str(job.id), 1, first.pid), (str(job.id), 2, second.pid)]
    taken = await row(container, job.id)
    # The takeover counted a lease expiry and gave the attempt back: provider failures keep their own limit.
    assert (taken.status, taken.attempt, taken.max_attempts, taken.lease_expiries) == ("running", 2, 4, 1)
    [entry] = taken.attempt_errors
    assert (entry["attempt"], entry["code"], entry["retryable"]) == (1, "lease_expired", True)
    second.kill()

    deadline = time.monotonic() + 30
    while (current := await row(container, job.id)).status == "running":
        assert time.monotonic() < deadline
        assert await container.queue.claim("finisher", 1) == []  # the second expiry is one too many
        await asyncio.sleep(0.2)
    assert (current.status, current.error_code, current.lease_expiries) == ("failed", "lease_expired", 2)
    assert len(sleepy_calls(calls_file)) == 2


class CountdownContext:
    """A Lambda context whose remaining time runs down from `total_sec`."""

    def __init__(self, total_sec: float) -> None:
        self.end = time.monotonic() + total_sec

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))


async def test_lambda_hands_the_job_back_before_its_timeout(
    settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.worker import handler

    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    job = await new_job(container, settings_json={"delay_sec": 20})
    event = {"job_id": str(job.id)}

    context = CountdownContext(handler.HAND_BACK_RESERVE_SEC + 3)
    result = await asyncio.to_thread(invoke_worker, event, context)

    assert result["status"] == "handed_back" and result["handed_back"] == [str(job.id)]
    assert context.get_remaining_time_in_millis() > 0  # it returned before its time was up
    handed = await row(container, job.id)
    assert (handed.status, handed.attempt, handed.lease_owner, handed.lease_expiries) == ("queued", 0, None, 0)

    # The next invocation (the re-dispatch) takes it as attempt 1 again.
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET settings_json = '{\"delay_sec\": 0.1}'::jsonb WHERE id = :id"), {"id": job.id}
        )
    again = await asyncio.to_thread(invoke_worker, event, CountdownContext(200))
    assert again["status"] == "succeeded"
    done = await row(container, job.id)
    assert (done.status, done.attempt, done.lease_expiries) == ("succeeded", 1, 0)
